"""Measure mesh3d on the offline photos and draw the before/after picture.

    python -m facefront.face.evaluate [--out report/face] [--photos a.jpg b.jpg ...] [--fps-iters 20]

For each photo (largest face): the input's head pose, the frontalized output's measured pose (our
landmarks + ``pose.head_pose`` run again on the output) and the dlib identity distance between input and
output (same person < 0.6). Also the CPU speed of ``frontalize`` (whole call, one face) and of the render
alone. Writes ``mesh3d_eval.md`` (the table) and ``mesh3d_before_after.png`` (input crop | output) to --out.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_PHOTOS = ("obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "astronaut.png",
                  "insightface_t1.jpg", "faceapi_sample3.jpg")


def evaluate(photos=DEFAULT_PHOTOS, fps_iters: int = 20):
    from facefront.data import load_rgb
    from facefront.face import align, analyze
    from facefront.face.identity import distance, embedding
    from facefront.face.mesh3d import frontalize, render
    from facefront.face.pose import head_pose

    rows, tiles = [], []
    for name in photos:
        im = load_rgb(name)
        f = analyze(im, max_faces=1)[0]
        out = frontalize(im, face=f)
        g = analyze(out, max_faces=1)[0]
        rows.append({"photo": name, "pose_in": head_pose(f.landmarks), "pose_out": head_pose(g.landmarks),
                     "id_dist": distance(embedding(im, f), embedding(out, g))})
        tiles.append(np.hstack([align.crop(im, f, "eye_mouth")[0], out]))
    im = load_rgb(photos[0])
    f = analyze(im, max_faces=1)[0]
    frontalize(im)
    t = time.perf_counter()
    for _ in range(fps_iters):
        frontalize(im)
    fps_full = fps_iters / (time.perf_counter() - t)
    t = time.perf_counter()
    for _ in range(fps_iters):
        render(im, f.landmarks)
    fps_render = fps_iters / (time.perf_counter() - t)
    return rows, tiles, {"photo": photos[0], "fps_frontalize": fps_full, "fps_render": fps_render,
                         "threads": os.cpu_count()}


def to_markdown(rows, speed) -> str:
    fmt = lambda p: "/".join(f"{v:+.1f}" for v in p)
    lines = ["| photo | input yaw/pitch/roll | output yaw/pitch/roll | identity distance |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['photo']} | {fmt(r['pose_in'])} | {fmt(r['pose_out'])} | {r['id_dist']:.3f} |")
    out = np.array([r["pose_out"] for r in rows])
    ids = np.array([r["id_dist"] for r in rows])
    lines += ["", f"mean |output yaw| {np.abs(out[:, 0]).mean():.1f} deg, mean |output pitch| "
                  f"{np.abs(out[:, 1]).mean():.1f} deg, max |yaw| {np.abs(out[:, 0]).max():.1f}; identity distance "
                  f"mean {ids.mean():.3f}, max {ids.max():.3f} (same person < 0.6)",
              f"CPU speed on {speed['photo']} ({speed['threads']} cores): frontalize (detect + landmarks + render) "
              f"{speed['fps_frontalize']:.1f} FPS, render alone {speed['fps_render']:.1f} FPS"]
    return "\n".join(lines) + "\n"


README_PHOTOS = ("obama2.jpg", "biden.jpg", "astronaut.png")  # public-domain pictures (US government, NASA)


def write_readme_image(path: Path, photos=README_PHOTOS, tile: int = 160) -> Path:
    import cv2

    from facefront import imaging
    from facefront.data import photo
    from facefront.face import align, analyze
    from facefront.face.mesh3d import frontalize
    rows = []
    for name in photos:
        rgb = imaging.decode(photo(name).read_bytes())
        crop, _ = align.crop(rgb, analyze(rgb, max_faces=1)[0], "eye_mouth", size=tile)
        outs = [frontalize(rgb, size=tile), frontalize(rgb, yaw=25, size=tile), frontalize(rgb, yaw=-25, size=tile)]
        rows.append(np.hstack([crop] + outs))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {path}")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="measure mesh3d on the offline photos")
    ap.add_argument("--out", default="report/face")
    ap.add_argument("--photos", nargs="*", default=list(DEFAULT_PHOTOS))
    ap.add_argument("--fps-iters", type=int, default=20)
    ap.add_argument("--readme-image", metavar="JPG",
                    help="only write the README's small picture (input crop | frontal | yaw +25 | yaw -25, one row "
                         "per photo) of the public-domain photos (US government portraits, NASA) to JPG")
    a = ap.parse_args(argv)
    import cv2
    if a.readme_image:
        write_readme_image(Path(a.readme_image))
        return 0
    rows, tiles, speed = evaluate(tuple(a.photos), a.fps_iters)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    md = to_markdown(rows, speed)
    (out / "mesh3d_eval.md").write_text(md)
    grid = np.vstack(tiles)
    cv2.imwrite(str(out / "mesh3d_before_after.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(md)
    print(f"wrote {out / 'mesh3d_eval.md'} and {out / 'mesh3d_before_after.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
