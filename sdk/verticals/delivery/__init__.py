"""Delivery: serving over HTTP, ONNX export, reports and model cards (built on the public API)."""
