"""bpnet.apps: what a trained network becomes: pictures (plots), an ONNX model (export) and a
page to draw digits on (serve)."""
