"""Unlearning Lab: see machine unlearning happen in generative models.

Run ``python app.py`` (embedded models, no network) and open http://localhost:7860.
Importing this module is cheap: gradio and every model library load inside :func:`build_app`.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gradio as gr

    from backends.lab import Lab

TITLE = "Unlearning Lab"
DEFAULT_PORT = 7860

CSS = """
.ul-status { padding: 4px 0; }
.ul-status progress { width: 40%; vertical-align: middle; }
.ul-error { color: #b42318; font-weight: 600; }
.ul-done { color: #067647; }
"""


def offline_environment() -> None:
    """No analytics, no telemetry; set before gradio / huggingface_hub are imported."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def build_app(lab: "Lab | None" = None, backends: list[str] | None = None) -> "gr.Blocks":
    """The whole UI. Builds every tab from the registry; loads no model."""
    offline_environment()
    import gradio as gr

    from backends import registry
    from backends.lab import Lab
    from backends.lessons import LESSONS
    from panels import about
    from panels.backend_tab import BackendTab, leave_handler
    from panels.lessons import LessonsTab

    registry.load_all()
    lab = lab or Lab()
    names = backends if backends is not None else [b.name for b in registry.backends()]
    tabs: list[BackendTab] = []
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\nMake a generative model forget a concept, then check whether it really did.")
        lessons_tab = LessonsTab(lab, names) if any(l.backend in names for l in LESSONS.values()) else None
        with gr.Tabs() as tab_set:
            for name in names:
                tab = BackendTab(lab, name)
                with gr.Tab(tab.backend.title, id=name, elem_id=f"tab-{name}"):
                    tab.render()
                tabs.append(tab)
            if lessons_tab is not None:
                with gr.Tab("Lessons", id="lessons", elem_id="tab-lessons"):
                    lessons_tab.render()
            with gr.Tab("About", id="about", elem_id="tab-about"):
                about.render()
        for tab in tabs:
            tab.listen()
        if lessons_tab is not None:
            lessons_tab.listen(tab_set, demo)
        demo.unload(leave_handler(lab))
    demo.lab = lab  # for tests and the benchmark
    return demo


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"), help="address to serve on")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", os.environ.get(
        "GRADIO_SERVER_PORT", DEFAULT_PORT))), help="port (default: $PORT or 7860)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not port_is_free(args.host, args.port):
        print(f"error: port {args.port} is already in use on {args.host}; "
              f"stop the other server or choose another port with --port N (or PORT=N).", file=sys.stderr)
        return 2
    demo = build_app()
    from backends.projection import warm_up_umap

    demo.queue(default_concurrency_limit=int(os.environ.get("UNLEARNING_LAB_UI_CONCURRENCY", "2")))
    import gradio as gr

    demo.launch(server_name=args.host, server_port=args.port, share=False, ssr_mode=False,
                footer_links=[], theme=gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                                                     font_mono=["ui-monospace", "monospace"]),
                css=CSS, prevent_thread_lock=True)
    warm_up_umap(background=True)
    from backends import registry

    known = [b.name for b in registry.backends()]
    preload = os.environ.get("UNLEARNING_LAB_PRELOAD", ",".join(known))
    demo.lab.preload([name.strip() for name in preload.split(",") if name.strip() in known])
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
