"""Deployment formats that know no method: ONNX and TFLite export and their INT8 quantisation."""
