import socket
import subprocess
import sys
from pathlib import Path

import app

ROOT = Path(__file__).resolve().parent.parent


def test_importing_app_and_building_the_ui_loads_no_model_library():
    code = (
        "import sys, app; demo = app.build_app(); "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'open_clip', 'umap') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_build_app_has_a_tab_per_backend_and_about(lab):
    demo = app.build_app(lab=lab, backends=["toy"])
    ids = {block.elem_id for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert {"tab-toy", "tab-about", "toy-generate", "toy-run", "toy-cancel", "toy-gallery"} <= ids
    assert demo.lab is lab


def test_port_in_use_gives_a_clear_message(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert not app.port_is_free("127.0.0.1", port)
        assert app.main(["--host", "127.0.0.1", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} is already in use" in err and "--port" in err


def test_port_flag_and_env(monkeypatch):
    monkeypatch.setenv("PORT", "9123")
    assert app.parse_args([]).port == 9123
    assert app.parse_args(["--port", "8000"]).port == 8000
