"""``blt generate --prompts FILE``: JSON Lines in, JSON Lines out, batched, one-line errors (issue 15)."""

from __future__ import annotations

import json

import pytest

from blt.generate import generate, load_generator
from test_generate_inputs import export

pytestmark = pytest.mark.usefixtures("one_thread")
PROMPTS = ["hello", "a b", "x", "the cat sat", "hello"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, registry):
    return export(tmp_path_factory.mktemp("gen_cli"), registry, {"kind": "space"}, seq_len=32)


def write_prompts(path, prompts):
    path.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
    return path


def test_prompts_file_to_json_lines(tmp_path, run_dir, capsysbinary):
    from blt.cli.main import main

    loaded = load_generator(run_dir)
    src = write_prompts(tmp_path / "prompts.jsonl", PROMPTS)
    expected = generate(loaded.model, loaded.patcher, PROMPTS, max_new_bytes=10)
    assert main(["generate", str(run_dir), "--prompts", str(src), "--max-bytes", "10", "--batch-size", "2"]) == 0
    records = [json.loads(line) for line in capsysbinary.readouterr().out.decode().splitlines()]
    assert [r["prompt"] for r in records] == PROMPTS
    assert [r["output"].encode() if "output_hex" not in r else bytes.fromhex(r["output_hex"]) for r in records] == expected
    assert all(r["stop"] in ("eos", "length") and r["new_bytes"] == len(e) for r, e in zip(records, expected))
    out = tmp_path / "out.jsonl"
    sampled = ["--temperature", "1.0", "--seed", "4", "--max-bytes", "6", "--out", str(out)]
    assert main(["generate", str(run_dir), "--prompts", str(src), "--batch-size", "2", *sampled]) == 0
    small_batches = out.read_text()
    assert main(["generate", str(run_dir), "--prompts", str(src), "--batch-size", "8", *sampled]) == 0
    assert out.read_text() == small_batches  # prompt i samples from stream (seed, i) whatever the batching
    assert capsysbinary.readouterr().out == b""


@pytest.mark.parametrize("lines, message", [
    (['"ok"', "{not json"], "line 2: not valid JSON"),
    (['"ok"', "", "3"], "line 3: expected a JSON string, got int"),
    (['"ok"', '""'], "line 2: the prompt is empty"),
    ([""], "no prompts"),
])
def test_bad_prompts_file_is_one_line_and_writes_nothing(tmp_path, run_dir, capsysbinary, lines, message):
    from blt.cli.main import main

    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["generate", str(run_dir), "--prompts", str(src), "--out", str(out)]) == 2
    err = capsysbinary.readouterr().err
    assert message.encode() in err and err.strip().count(b"\n") == 0
    assert not out.exists()


def test_prompt_and_prompts_are_exclusive(tmp_path, run_dir, capsysbinary):
    from blt.cli.main import main

    src = write_prompts(tmp_path / "p.jsonl", ["a"])
    with pytest.raises(SystemExit) as info:  # argparse: usage and one error line
        main(["generate", str(run_dir), "--prompt", "a", "--prompts", str(src)])
    assert info.value.code == 2
    assert main(["generate", str(run_dir), "--prompt", "a", "--out", str(tmp_path / "o")]) == 2
    assert b"--out needs --prompts" in capsysbinary.readouterr().err
