"""mesh3d on the offline photos of `make data`: input and output head pose, identity distance input -> output,
and the CPU speed of a whole `frontalize` call and of the render alone (`facefront.face.evaluate` measures it).

Output pose = our landmarks and head_pose run again on the frontalized output; identity = dlib ResNet distance
(same person < 0.6). Writes --results (JSON with machine, date, command) and prints the markdown table; the
README's mesh3d sentence is rendered from it by `python -m bench readme`.

examples:
  python -m bench mesh3d --results bench/results/mesh3d_eval.json
  python -m bench mesh3d --photos obama.jpg biden.jpg --fps-iters 5
"""
from __future__ import annotations

import numpy as np

from . import add_results_argument, header, write_results


def add_arguments(p) -> None:
    from facefront.face.evaluate import DEFAULT_PHOTOS
    p.add_argument("--photos", nargs="+", default=list(DEFAULT_PHOTOS), help="photos from `make data`")
    p.add_argument("--fps-iters", type=int, default=20, help="timed calls for the speed figures (default 20)")
    add_results_argument(p, "bench/results/mesh3d_eval.json")


def run(args) -> int:
    from facefront.face.evaluate import evaluate, to_markdown
    started = header("mesh3d")
    rows, _, speed = evaluate(tuple(args.photos), args.fps_iters)
    out = np.array([r["pose_out"] for r in rows])
    ids = np.array([r["id_dist"] for r in rows])
    inp = np.array([r["pose_in"] for r in rows])
    summary = {"photos": len(rows), "max_abs_input_yaw": round(float(np.abs(inp[:, 0]).max()), 1),
               "mean_abs_output_yaw": round(float(np.abs(out[:, 0]).mean()), 2),
               "mean_abs_output_pitch": round(float(np.abs(out[:, 1]).mean()), 2),
               "identity_mean": round(float(ids.mean()), 3), "identity_max": round(float(ids.max()), 3)}
    write_results(args.results, "mesh3d", {
        "rows": [{"photo": r["photo"], "pose_in": [round(float(v), 2) for v in r["pose_in"]],
                  "pose_out": [round(float(v), 2) for v in r["pose_out"]], "id_dist": round(float(r["id_dist"]), 4)}
                 for r in rows],
        "summary": summary, "speed": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in speed.items()}},
        started)
    print(to_markdown(rows, speed))
    return 0
