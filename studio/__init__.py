"""facefront studio: a browser page over a facefront Triton server (upload, frontalize, drag to turn, FacePoke's
controls, every model side by side). ``python -m studio --triton 127.0.0.1:8001``; see docs/studio.md."""
