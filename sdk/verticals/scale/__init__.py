"""Batch scoring at scale: file-to-file streaming on one machine, Ray Data across a cluster."""
