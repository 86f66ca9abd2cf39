"""Pretrained presets: downloaded once from a local HTTP server (127.0.0.1), resumed, checked, converted once."""

import hashlib
import http.server
import json
import os
import socket
import threading

import numpy as np
import pytest
from pytorch_reference import random_state_dict, write_torch_checkpoint

import tf_hourglass
from tf_hourglass.data import keypoint_specs
from tf_hourglass.evaluate import main as evaluate_main
from tf_hourglass.model_loader import load_model_for_inference
from tf_hourglass.weights import pretrained

NAME = "hg_test_pv"


class CheckpointServer:
    """Serves one file on 127.0.0.1, honouring Range; ``cut_at`` makes it stop sending there once."""

    def __init__(self, data: bytes):
        self.data = data
        self.cut_at = None
        self.requests = []  # the Range header of each request ("" for none)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                byte_range = self.headers.get("Range", "")
                server.requests.append(byte_range)
                if self.path.endswith("/missing"):
                    self.send_error(404, "Not Found")
                    return
                start = int(byte_range[len("bytes=") : -1]) if byte_range else 0
                body = server.data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_at is not None:
                    body, server.cut_at = body[: server.cut_at - start], None
                    self.wfile.write(body)
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-file
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/original_2hg/checkpoint.pt"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    """A PV checkpoint (1 stack, 8 filters, depth 1, MPII's 16 joints) as torch.save writes it."""
    state = random_state_dict("pv", num_stacks=1, filters=8, num_keypoints=16, depth=1)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    write_torch_checkpoint(
        path, {"state_dict": {"model.module." + k: v for k, v in state.items()}, "epoch": 1}
    )
    return path.read_bytes()


@pytest.fixture
def server(checkpoint_bytes):
    server = CheckpointServer(checkpoint_bytes)
    yield server
    server.close()


@pytest.fixture
def preset(monkeypatch, tmp_path, server):
    """A pretrained preset whose URL is the local server, with the cache in tmp_path."""
    monkeypatch.setenv(pretrained.CACHE_ENVIRONMENT_VARIABLE, str(tmp_path / "cache"))
    entry = pretrained.Pretrained(
        source="pv", url=server.url, file_name="checkpoint.pt", spec="mpii", input_size=64, description="test"
    )
    monkeypatch.setitem(pretrained.PRETRAINED, NAME, entry)
    return tmp_path / "cache" / NAME


def test_first_use_downloads_records_and_converts_then_later_uses_only_the_cache(
    preset, server, checkpoint_bytes
):
    model = tf_hourglass.from_preset(NAME)
    assert model.num_stacks == 1 and model.num_keypoints == 16
    assert model.pose_info.spec == keypoint_specs.MPII
    record = json.loads((preset / "checkpoint.json").read_text())
    assert record == {
        "url": server.url,
        "size": len(checkpoint_bytes),
        "sha256": hashlib.sha256(checkpoint_bytes).hexdigest(),
    }
    assert (preset / "checkpoint.pt").read_bytes() == checkpoint_bytes
    assert server.requests == [""]
    modified = os.path.getmtime(preset / "model.keras")

    again = load_model_for_inference(NAME)  # what every command calls with --model NAME
    assert again.spec == keypoint_specs.MPII and again.input_size == (64, 64)
    assert server.requests == [""]  # nothing downloaded again
    assert os.path.getmtime(preset / "model.keras") == modified  # nor converted again
    assert not [name for name in os.listdir(preset) if ".tmp-" in name or name.endswith(".part")]


def test_an_interrupted_download_resumes_where_it_stopped(preset, server, checkpoint_bytes):
    server.cut_at = len(checkpoint_bytes) // 2
    with pytest.raises(pretrained.PretrainedError, match=r"run again to resume from .*checkpoint\.pt\.part"):
        pretrained.pretrained_model_path(NAME, progress=False)
    assert (preset / "checkpoint.pt.part").stat().st_size == len(checkpoint_bytes) // 2
    assert not (preset / "checkpoint.pt").exists()

    path = pretrained.pretrained_model_path(NAME, progress=False)
    assert server.requests == ["", f"bytes={len(checkpoint_bytes) // 2}-"]
    assert (preset / "checkpoint.pt").read_bytes() == checkpoint_bytes
    assert path == str(preset / "model.keras")


def test_a_cached_checkpoint_of_another_size_or_content_is_refused_and_kept(preset, checkpoint_bytes):
    pretrained.pretrained_model_path(NAME, progress=False)
    checkpoint = preset / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint_bytes[:-10])
    with pytest.raises(
        pretrained.PretrainedError,
        match=rf"changed since it was downloaded \({len(checkpoint_bytes) - 10} bytes",
    ):
        pretrained.pretrained_model_path(NAME, progress=False)
    changed = bytearray(checkpoint_bytes)
    changed[-1] ^= 0xFF
    checkpoint.write_bytes(bytes(changed))
    with pytest.raises(
        pretrained.PretrainedError, match="remove it and .*checkpoint.json to download it again"
    ):
        load_model_for_inference(NAME)
    assert checkpoint.read_bytes() == bytes(changed)  # nothing deleted


def test_offline_names_the_url_and_where_to_put_a_hand_downloaded_file(
    preset, server, checkpoint_bytes, capsys
):
    server.close()  # nothing listens on that port any more
    with pytest.raises(pretrained.PretrainedError) as error:
        pretrained.pretrained_model_path(NAME, progress=False)
    message = str(error.value)
    assert server.url in message and f"save it as {preset / 'checkpoint.pt'}" in message
    assert "\n" not in message

    status = evaluate_main(
        ["evaluate", "--model", NAME, "--format", "mpii_h5", "--annotations", "x.h5", "--images", "."]
    )
    assert status == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("evaluate: error: ") and len(err.splitlines()) == 1

    # A file downloaded by hand and put there works offline; its hash is recorded on first use.
    (preset / "checkpoint.pt").write_bytes(checkpoint_bytes)
    model = load_model_for_inference(NAME)
    assert model.num_keypoints == 16
    assert json.loads((preset / "checkpoint.json").read_text())["size"] == len(checkpoint_bytes)


def test_a_dead_link_says_what_the_server_answered(preset, server, monkeypatch):
    entry = pretrained.PRETRAINED[NAME]
    monkeypatch.setitem(
        pretrained.PRETRAINED,
        NAME,
        pretrained.Pretrained(**{**entry.__dict__, "url": server.url + "/missing"}),
    )
    with pytest.raises(
        pretrained.PretrainedError, match=r"/missing answered HTTP 404 \(Not Found\); download it by hand"
    ):
        pretrained.pretrained_model_path(NAME, progress=False)


def test_pretrained_presets_take_no_architecture_overrides_and_unknown_names_list_both_kinds():
    with pytest.raises(ValueError, match="cannot change"):
        tf_hourglass.from_preset("hg8_mpii_pv", num_keypoints=14)
    with pytest.raises(ValueError, match=r"pretrained: \['hg2_mpii_pv', 'hg8_mpii_pv'\]"):
        tf_hourglass.from_preset("hg9")


def test_the_converted_preset_predicts_like_the_checkpoint_model(preset):
    model = tf_hourglass.from_preset(NAME)
    estimator = tf_hourglass.PoseEstimator(NAME)
    result = estimator.predict(np.zeros((48, 64, 3), np.uint8))
    assert result["keypoints"].shape == (16, 2)
    assert estimator.model.num_keypoints == model.num_keypoints
