"""AniPortrait at serving time: numpy and onnxruntime only (no torch, no diffusers).

Frontalization is posed as pose-to-image: the photo's own 468 FaceMesh landmarks are turned to the requested pose
and drawn as AniPortrait's pose image (`pose_image`), and the diffusion networks denoise that person in that pose.

    pose_image  the landmark drawing (upstream's FaceMeshVisualizer) and the re-posing for frontalization
    scheduler   DDIM in numpy (linear betas, zero-SNR rescale, trailing spacing, v-prediction) and torch-equal noise
    loop        the pose-to-image loop over five network calls, run by onnxruntime in-process or by Triton leaves
    stage       the served model `aniportrait_frontalize`: a decoupled BLS stage streaming one progress message
                per denoising step
    client      a gRPC streaming client that shows that progress

The build side (export/aniportrait) imports its preprocessing from here, never the other way round.
"""
