"""Secret watermark keys with ids: made by `visuels keys init`, rotated without losing old pictures,
the public demo key only on purpose."""

import json
from pathlib import Path

import numpy as np
import pytest
from visuels.cli.main import main
from visuels.marking import watermark
from visuels.marking.keys import SigningError, signing_files
from visuels.marking.mark import LOSSY_QUALITY
from visuels.marking.watermark_keys import (
    DEMO_KEY,
    WATERMARK_KEYS,
    WatermarkKeyError,
    active_key,
    find_mark,
    known_keys,
    ring,
)

from tests.watermark_attacks import chain_output, encode, pink_noise

PAYLOAD = 0x0123_4567_89AB_CDEF


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    from visuels.inputs.charter import load_charter

    from tests.helpers import SAMPLE_CHARTER_DIR

    return chain_output(load_charter(SAMPLE_CHARTER_DIR), pink_noise(540, 720, seed=7), 720, 540)


@pytest.fixture
def own_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "keys"
    monkeypatch.setenv("VISUELS_KEYS_DIR", str(folder))
    monkeypatch.delenv("VISUELS_WATERMARK_KEY", raising=False)
    return folder


def test_keys_init_makes_a_secret_key_with_an_id_then_rotation_keeps_old_pictures_found(
    own_keys: Path, picture: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "init"]) == 0
    ring_file = own_keys / WATERMARK_KEYS
    assert ring_file.stat().st_mode & 0o777 == 0o600
    first = signing_files().watermark
    assert first.id.startswith("wk-") and not first.demo and first.value.bit_length() > 64
    assert str(first.value) not in repr(first) and f"{first.value:x}" not in repr(first)  # never in a log
    old_picture, _ = watermark.embed_readable(picture, PAYLOAD, first.value)  # as exports mark

    assert main(["keys", "rotate"]) == 0
    second = signing_files().watermark
    assert second.id != first.id and [key.id for key in ring(own_keys)] == [first.id, second.id]
    new_picture, _ = watermark.embed_readable(picture, PAYLOAD + 1, second.value)
    keys = known_keys(own_keys)
    assert [key.id for key in keys] == [second.id, first.id, "demo"]  # newest first, the demo key last
    for marked, payload, key in ((old_picture, PAYLOAD, first), (new_picture, PAYLOAD + 1, second)):
        # Marked and saved as exports mark and save JPEG (q92): keys are random here, and q50 loses
        # the mark for a few of them (the rates per attack are the benchmarks', over fixed keys).
        found, by = find_mark(encode(marked, "JPEG", quality=LOSSY_QUALITY), keys)
        assert found.payload == payload and by == key
    found, by = find_mark(picture, keys)
    assert found.payload is None and by is None

    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert first.id in listed and second.id in listed and f"{second.value:032x}" not in listed
    assert main(["keys", "init"]) == 2  # everything is there: nothing overwritten
    assert [key.id for key in ring(own_keys)] == [first.id, second.id]


def test_every_key_tried_shares_the_searches_work_on_the_picture(
    picture: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unmarked upload tried with a ring of keys is whitened (as it is, turned back, in each
    place a picture may sit) once, not once per key: a further key whitens only the places it
    ranks likeliest, straightened. Each key's search ends as its own would."""
    from visuels.marking.framing import KEYSTONES
    from visuels.marking.watermark import STRAIGHTENED_BOXES
    from visuels.marking.watermark_keys import WatermarkKey

    page = np.full((1400, 1000, 3), 235, np.uint8)
    page[200:740, 100:820] = np.roll(picture, 40, axis=1)  # a screenshot of an unmarked page
    whitened = []
    original = watermark._whitened_residual
    monkeypatch.setattr(watermark, "_whitened_residual", lambda *args: whitened.append(1) or original(*args))
    alone = watermark.detect(page, 11)
    once = len(whitened)
    keys = [WatermarkKey(id=f"wk-{value}", value=value) for value in (11, 12, 13)]
    found, by = find_mark(page, keys)
    further = 2 * STRAIGHTENED_BOXES * len(KEYSTONES)  # at most, for the two keys after the first
    assert once <= len(whitened) - once <= once + further < 3 * once  # not once per key
    assert (found, by) == (alone, None)


def test_the_demo_key_marks_only_when_asked_for_on_purpose(
    own_keys: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from visuels.marking.keys import init_local_chain

    init_local_chain(own_keys)
    (own_keys / WATERMARK_KEYS).unlink()  # a keys folder from before watermark keys
    with pytest.raises(WatermarkKeyError, match="no watermark key: run `visuels keys init`"):
        signing_files()
    monkeypatch.setenv("VISUELS_WATERMARK_KEY", "demo")
    assert signing_files().watermark.demo and signing_files().watermark.id == "demo"
    monkeypatch.setenv("VISUELS_WATERMARK_KEY", "0x5EC12E7")
    assert active_key(own_keys).value == 0x5EC12E7 and not active_key(own_keys).demo
    for bad, words in (("not-hex", "is not a hexadecimal number"), ("0", "positive"), ("f" * 40, "128 bits")):
        monkeypatch.setenv("VISUELS_WATERMARK_KEY", bad)
        with pytest.raises(WatermarkKeyError, match=words) as raised:
            active_key(own_keys)
        assert raised.value.file == "VISUELS_WATERMARK_KEY"
    monkeypatch.delenv("VISUELS_WATERMARK_KEY")
    assert main(["keys", "init"]) == 0  # adds the missing key, keeps the chain
    assert "watermark key wk-" in capsys.readouterr().out
    assert not active_key(own_keys).demo
    assert known_keys(own_keys)[-1].value == DEMO_KEY  # old pictures, marked with it, still found


def test_a_broken_key_ring_is_named_with_its_field(own_keys: Path) -> None:
    own_keys.mkdir()
    ring_file = own_keys / WATERMARK_KEYS
    for content, field, words in (
        ("{", None, "not a watermark key ring"),
        ("[" * 100_000 + "]" * 100_000, None, "not a watermark key ring"),  # was a RecursionError
        ('{"keys": 3}', "keys", "a list of keys"),
        ('{"keys": [{"key": 12}]}', "keys[0]", "a key is expected"),
        ('{"keys": [{"key": "zz"}]}', "keys[0]", "not a hexadecimal number"),
        ('{"keys": [{"id": "wk-0000000000", "key": "5ec12e7"}]}', "keys[0]", "its id does not match its key"),
    ):
        ring_file.write_text(content)
        with pytest.raises(WatermarkKeyError, match=words) as raised:
            ring(own_keys)
        assert (raised.value.file, raised.value.field) == (str(ring_file), field)
    ring_file.write_text(json.dumps({"keys": [{"key": "5ec12e7"}]}))  # an id is optional: derived
    assert ring(own_keys)[0].value == 0x5EC12E7


def test_rendering_without_a_watermark_key_is_refused_in_one_line(
    own_keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from visuels.marking.keys import init_local_chain

    from tests.helpers import SAMPLE_CAMPAIGN

    init_local_chain(own_keys)
    (own_keys / WATERMARK_KEYS).unlink()
    out = tmp_path / "outputs"
    assert main(["render", str(SAMPLE_CAMPAIGN), "--output-dir", str(out)], render=lambda request: None) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "watermark-keys.json" in error and "visuels keys init" in error
    assert not out.exists()
    with pytest.raises(SigningError):
        signing_files(tmp_path / "elsewhere")


def test_keys_init_killed_before_its_last_file_is_run_again_to_the_end(
    own_keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`keys init` killed while it wrote its files (after the signer's key, before the chain's
    trust anchor) left a key that could not sign, which `keys init` then refused to replace."""
    import visuels.marking.keys as keys_module

    written = keys_module.write_bytes_atomic

    def killed(path: Path, data: bytes, mode: int = 0o644) -> None:
        if path.name == keys_module.TRUST_ANCHORS:
            raise KeyboardInterrupt
        written(path, data, mode)

    with monkeypatch.context() as patched:
        patched.setattr(keys_module, "write_bytes_atomic", killed)
        assert main(["keys", "init"]) == 130
    assert main(["keys", "init"]) == 0
    assert signing_files(own_keys).private_key.is_file()  # a key that signs with its chain today


def test_two_processes_starting_at_once_on_a_fresh_machine_make_one_set_of_keys(tmp_path: Path) -> None:
    """The demo beside `make serve`, or two render machines sharing a keys folder, on their first
    start: each made a watermark key and a chain and wrote over the other's, so pictures the first
    marked carried a key the ring no longer held (and a signer's key could end up another's
    certificate's). The second now waits for the first and finds its keys."""
    import subprocess
    import sys
    import time

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from visuels.marking.keys import CHAIN, SIGNER_KEY

    folder, go = tmp_path / "keys", tmp_path / "go"
    script = (
        "import sys, time; from pathlib import Path\n"
        "from visuels.marking.keys import ensure_local_chain\n"
        "from visuels.marking.watermark_keys import active_key\n"
        "print('ready', flush=True)\n"
        "while not Path(sys.argv[2]).exists(): time.sleep(0.001)\n"
        "made = ensure_local_chain(Path(sys.argv[1]))\n"
        "print(made, active_key(Path(sys.argv[1])).id, flush=True)\n"
    )
    starts = [
        subprocess.Popen([sys.executable, "-c", script, str(folder), str(go)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for process in starts:
        assert process.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    go.touch()
    answers = [process.communicate(timeout=60)[0].split() for process in starts]
    assert sorted(made for made, _ in answers) == ["False", "True"]  # one made them, the other found them
    ring = json.loads((folder / "watermark-keys.json").read_text())["keys"]
    assert [key["id"] for key in ring] == [answers[0][1]] == [answers[1][1]]  # each marks with the one kept
    certificate = x509.load_pem_x509_certificates((folder / CHAIN).read_bytes())[0]
    signer = serialization.load_pem_private_key((folder / SIGNER_KEY).read_bytes(), None)
    assert certificate.public_key().public_numbers() == signer.public_key().public_numbers()
    assert not list(folder.glob(".*lock*"))
