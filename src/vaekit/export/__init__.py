"""``vaekit export``: a trained model out of Python. ``onnx``: encoder and decoder graphs for onnxruntime."""

from vaekit.export.onnx import FORMATS, describe, export_onnx

__all__ = ["FORMATS", "describe", "export_onnx"]
