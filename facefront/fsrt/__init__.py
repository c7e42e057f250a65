"""FSRT served (runtime half; the networks and their export are `export/fsrt/`).

`geometry`: FSRT's pixel grid, keypoint normalisation (absolute / relative with adapt_scale) and the chunked
decoding loop, in numpy: the served path and the PyTorch reference (export/fsrt/reference.py) share them.
`stages`: the python stages of the `fsrt_frontalize` ensemble (preprocess with mesh3d's driver render, the
chunked decoder call, uint8 postprocess). Nothing here imports torch or the build side.
"""
