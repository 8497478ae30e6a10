"""Verticals pack 'insurance': Insurance-claim triage: route a first notice of loss to the right claims team."""

__version__ = "0.1.0"
