"""python -m studio.screenshot: the README's picture of the studio page, made in Debian's Chromium.

    python -m studio.screenshot --serve --out docs/images/studio.jpg      # starts a CPU server (about a minute)
    python -m studio.screenshot --triton 127.0.0.1:8001 --out docs/images/studio.jpg

Uploads a turned face (`make data`'s obama2.jpg, yaw -16), frontalizes it with mesh3d, runs Compare over every
served model, and saves the whole page.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

TIMEOUT_MS = 300_000


def capture(studio_url: str, photo: Path, out: Path, model: str = "mesh3d") -> None:
    from playwright.sync_api import expect, sync_playwright
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("error: Debian's chromium is not installed: run `make browser`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(studio_url + "/")
            page.wait_for_selector("[data-testid=model] option", state="attached")
            served = [o.get_attribute("value") for o in page.locator("[data-testid=model] option").all()]
            page.select_option("[data-testid=model]", model)
            page.set_input_files("[data-testid=upload]", str(photo))
            page.wait_for_selector("[data-testid=face-box]")
            page.click("[data-testid=frontalize]")
            page.wait_for_selector("[data-testid=result][data-seq]")
            page.click("[data-testid=compare]")
            expect(page.locator("[data-testid=compare-tile][data-done]")).to_have_count(len(served), timeout=TIMEOUT_MS)
            out.parent.mkdir(parents=True, exist_ok=True)
            kind = "jpeg" if out.suffix.lower() in (".jpg", ".jpeg") else "png"
            page.screenshot(path=str(out), full_page=True, type=kind, **({"quality": 82} if kind == "jpeg" else {}))
        finally:
            browser.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m studio.screenshot", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--triton", default="127.0.0.1:8001", help="Triton gRPC host:port (default 127.0.0.1:8001)")
    p.add_argument("--serve", action="store_true", help="start a CPU Triton server (every exported model) for the shot")
    p.add_argument("--photo", default="obama2.jpg", help="a photo of `make data` or a path (default obama2.jpg)")
    p.add_argument("--model", default="mesh3d", help="the model picked on the page (default mesh3d)")
    p.add_argument("--out", type=Path, default=Path("docs/images/studio.jpg"), help="image to write (.jpg or .png)")
    args = p.parse_args(argv)
    from facefront.data import photo as data_photo
    from facefront.repository import MODEL_REPOSITORY

    from .background import BackgroundStudio
    photo = Path(args.photo) if Path(args.photo).is_file() else data_photo(args.photo)
    server, triton = None, args.triton
    if args.serve:
        from facefront.serving.server import Server, free_ports
        http, grpc, metrics = free_ports(3)
        server = Server(http_port=http, grpc_port=grpc, metrics_port=metrics).start()
        triton = server.grpc_url
    try:
        with BackgroundStudio(triton, repository=MODEL_REPOSITORY) as studio:
            capture(studio.url, photo, args.out, args.model)
    finally:
        if server is not None:
            server.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
