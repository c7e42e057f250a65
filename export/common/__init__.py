"""Pieces every model family in `export/` shares: synthetic weights, fixtures, ONNX, TensorRT, manifests."""
