"""lm-evaluation-harness adapter: ``BltLM`` and ``blt lm-eval`` on a tiny trained run, offline.

Oracles: :class:`blt.evaluation.score.Scorer` (per-byte nats, continuation log-likelihoods),
:func:`blt.generate.generate` (greedy continuations) and ``blt eval`` (held-out BPB of a file).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _tiny import run_env, tiny, write_toml
from hypothesis import given
from hypothesis import strategies as st

from blt.cli.main import main

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "tests" / "data" / "lm_eval_tasks"
SEQ_LEN = 256
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Tiny models: one torch thread (two oversubscribe shared CPUs, slowing generation steps badly)."""


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    """Offline, with the datasets cache in a temporary directory (set before lm-eval imports datasets)."""
    home = tmp_path_factory.mktemp("hf")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**OFFLINE, "HF_HOME": str(home), "HF_DATASETS_CACHE": str(home / "datasets")}.items():
            mp.setenv(key, value)
        yield home


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, hf_home):
    """A tiny BLT trained for a few steps with rows of 256 bytes (one training, shared by the module)."""
    root = tmp_path_factory.mktemp("lm_eval_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BLT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
        mp.setenv("BLT_DISABLE_PLUGIN_AUTOLOAD", "1")
        cfg = write_toml(root / "c.toml", tiny(data={"seq_len": SEQ_LEN},
                                               train={"steps": 12, "eval_every": 0, "checkpoint_every": 0}))
        assert main(["train", str(cfg), "--out", str(root / "run")]) == 0
        yield root / "run"


@pytest.fixture(scope="module")
def lm(run_dir):
    pytest.importorskip("lm_eval")
    from blt.evaluation.lm_eval_adapter import BltLM

    return BltLM(str(run_dir), batch_size=4, progress=False)


@pytest.fixture(scope="module")
def local_tasks(tmp_path_factory):
    """The shipped task YAMLs with ``data_files`` made absolute, so they load from any directory."""
    out = tmp_path_factory.mktemp("tasks")
    for yaml in TASKS.glob("*.yaml"):
        text = yaml.read_text(encoding="utf-8").replace("tests/data/lm_eval_tasks/", f"{TASKS}/")
        (out / yaml.name).write_text(text, encoding="utf-8")
    return out


def _docs(name: str) -> list[dict]:
    return [json.loads(line) for line in (TASKS / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _json_out(capsys, argv: list[str]) -> dict:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def _fails(capsys, argv, *needles) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    line = " ".join(err.split())
    assert line.startswith("error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in line, line
    return line


# --- blt lm-eval on the shipped local tasks ------------------------------------------------------

def test_cli_runs_local_tasks_offline_from_the_repository_root(run_dir, hf_home, tmp_path):
    """The shipped YAMLs as they are (relative data_files, read from the current directory), in a
    fresh process with the Hugging Face hub and datasets offline."""
    pytest.importorskip("lm_eval")
    env = run_env(tmp_path / "cache", **OFFLINE, HF_HOME=str(hf_home))
    proc = subprocess.run([sys.executable, "-m", "blt", "lm-eval", str(run_dir), "--tasks", "blt_tiny_mc,blt_tiny_rolling",
                           "--include-path", "tests/data/lm_eval_tasks", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    mc, rolling = out["results"]["blt_tiny_mc"], out["results"]["blt_tiny_rolling"]
    assert 0.0 <= mc["acc,none"] <= 1.0 and 0.0 <= mc["acc_norm,none"] <= 1.0
    assert out["n-samples"]["blt_tiny_mc"]["effective"] == len(_docs("blt_tiny_mc.jsonl"))
    assert 0.0 < rolling["bits_per_byte,none"] < 16.0
    assert rolling["byte_perplexity,none"] == pytest.approx(2.0 ** rolling["bits_per_byte,none"], rel=1e-9)
    assert out["config"]["seq_len"] == SEQ_LEN


def test_cli_prints_lm_eval_table(run_dir, local_tasks, capsys):
    pytest.importorskip("lm_eval")
    assert main(["lm-eval", str(run_dir), "--tasks", "blt_tiny_mc", "--include-path", str(local_tasks), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "Tasks" in header and "Metric" in header and "Value" in header
    assert re.search(r"\|blt_tiny_mc\s*\|", out) and "acc_norm" in out


# --- bits_per_byte agrees with blt eval ----------------------------------------------------------

def test_bits_per_byte_agrees_with_blt_eval(run_dir, tmp_path, capsys):
    """One 250-byte document: ``BOS + bytes + EOS`` is one row of ``blt eval`` (seq_len 256) and one
    rolling window, so both score every byte with the same context. The only difference: ``blt eval``
    also scores the closing EOS (and counts it as a byte), lm-eval's rolling likelihood does not."""
    pytest.importorskip("lm_eval")
    from blt.corpus import iter_builtin_documents
    from blt.evaluation.score import Scorer

    text = next(iter_builtin_documents(split="heldout", sources=["kjv"])).text.encode("utf-8")[:250].decode("utf-8", "ignore")
    n = len(text.encode("utf-8"))
    assert n + 2 <= SEQ_LEN + 1  # the premise: BOS + document + EOS fit one row
    data = tmp_path / "one.jsonl"
    data.write_text(json.dumps({"text": text}) + "\n", encoding="utf-8")
    include = tmp_path / "tasks"
    include.mkdir()
    yaml = (TASKS / "blt_tiny_rolling.yaml").read_text(encoding="utf-8")
    yaml = yaml.replace("task: blt_tiny_rolling", "task: one_document").replace("tests/data/lm_eval_tasks/blt_tiny_rolling.jsonl", str(data))
    (include / "one_document.yaml").write_text(yaml, encoding="utf-8")

    blt_eval = _json_out(capsys, ["eval", str(run_dir), str(data), "--json"])
    harness = _json_out(capsys, ["lm-eval", str(run_dir), "--tasks", "one_document", "--include-path", str(include), "--json"])
    bpb = harness["results"]["one_document"]["bits_per_byte,none"]
    assert blt_eval["bytes"] == n + 1  # the document's bytes and its EOS
    assert abs(bpb - blt_eval["bpb"]) / blt_eval["bpb"] < 0.01, (bpb, blt_eval["bpb"])
    # the whole gap is the EOS term: blt eval's total nats = lm-eval's + the nats of EOS after the text
    eos_nats = float(Scorer.from_run(run_dir).stream_nats([text.encode("utf-8")])[0][-1])
    ln2 = math.log(2.0)
    assert bpb * n * ln2 + eos_nats == pytest.approx(blt_eval["bpb"] * (n + 1) * ln2, rel=1e-5)


# --- BltLM from Python -----------------------------------------------------------------------------

def test_simple_evaluate_matches_the_scorer(lm, local_tasks):
    """``lm_eval.simple_evaluate(model=BltLM(...))``: the rolling metrics are the scorer's per-byte
    nats over lm-eval's byte and word counts, and acc / acc_norm the argmax of its log-likelihoods."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(model=lm, tasks=["blt_tiny_rolling", "blt_tiny_mc"], bootstrap_iters=0,
                                  task_manager=TaskManager(include_path=str(local_tasks), include_defaults=False))
    texts = [d["text"] for d in _docs("blt_tiny_rolling.jsonl")]
    nats = sum(float(x.sum()) for x in lm.scorer.document_nats([t.encode("utf-8") for t in texts]))
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_words = sum(len(re.split(r"\s+", t)) for t in texts)
    rolling = out["results"]["blt_tiny_rolling"]
    assert rolling["bits_per_byte,none"] == pytest.approx(nats / n_bytes / math.log(2.0), rel=1e-9)
    assert rolling["byte_perplexity,none"] == pytest.approx(math.exp(nats / n_bytes), rel=1e-9)
    assert rolling["word_perplexity,none"] == pytest.approx(math.exp(nats / n_words), rel=1e-9)

    acc, acc_norm = [], []
    for doc in _docs("blt_tiny_mc.jsonl"):
        lls = [ll for ll, _ in lm.scorer.loglikelihood([(doc["question"].encode(), (" " + c).encode()) for c in doc["choices"]])]
        acc.append(max(range(len(lls)), key=lls.__getitem__) == doc["answer"])
        normed = [ll / len(c) for ll, c in zip(lls, doc["choices"])]
        acc_norm.append(max(range(len(normed)), key=normed.__getitem__) == doc["answer"])
    mc = out["results"]["blt_tiny_mc"]
    assert mc["acc,none"] == pytest.approx(sum(acc) / len(acc))
    assert mc["acc_norm,none"] == pytest.approx(sum(acc_norm) / len(acc_norm))


def test_generate_until_task_matches_direct_generation(lm, local_tasks):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from blt.evaluation.lm_eval_adapter import cut_at_stop
    from blt.generate import generate

    out = lm_eval.simple_evaluate(model=lm, tasks=["blt_tiny_gen"], bootstrap_iters=0, log_samples=True,
                                  task_manager=TaskManager(include_path=str(local_tasks), include_defaults=False))
    samples = sorted(out["samples"]["blt_tiny_gen"], key=lambda s: s["doc_id"])
    docs = _docs("blt_tiny_mc.jsonl")
    expected = generate(lm.scorer.model, lm.scorer.patcher, [d["question"] for d in docs], max_new_bytes=16)
    for sample, raw in zip(samples, expected, strict=True):
        want = cut_at_stop(raw, [b"\n", b"."]).decode("utf-8", errors="replace")
        assert sample["resps"][0][0] == want
        assert len(want.encode("utf-8")) <= 16


def _requests(kind: str, args: list[tuple]) -> list:
    from lm_eval.api.instance import Instance

    return [Instance(kind, {}, a, i) for i, a in enumerate(args)]


def test_loglikelihood_and_rolling_are_the_scorers_and_batch_independent(lm):
    pairs = [("And God said", " Let there be light"), ("", "In the beginning"), ("caf", "\u00e9 \u6587"), ("x" * 300, " y")]
    got = lm.loglikelihood(_requests("loglikelihood", pairs))
    want = lm.scorer.loglikelihood([(c.encode(), x.encode()) for c, x in pairs])
    assert [g for _, g in got] == [g for _, g in want]
    assert [ll for ll, _ in got] == pytest.approx([ll for ll, _ in want], rel=1e-9)
    assert all(ll < 0 for ll, _ in got)
    texts = ["a", "And the earth was without form, and void.", "z" * 700]  # the last spans several windows
    rolling = lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(t,) for t in texts]))
    assert rolling == pytest.approx([-float(x.sum()) for x in lm.scorer.document_nats([t.encode() for t in texts])], rel=1e-9)
    before = lm.batch_size
    try:
        lm.batch_size = 1
        assert [ll for ll, _ in lm.loglikelihood(_requests("loglikelihood", pairs))] == pytest.approx([ll for ll, _ in got], rel=1e-5)
        assert lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(t,) for t in texts])) == pytest.approx(rolling, rel=1e-5)
    finally:
        lm.batch_size = before


def test_generate_until_stops_limits_and_is_deterministic(lm):
    from blt.generate import generate

    prompts = ["And God said", "In the beginning", "The LORD is", "x"]
    greedy = [(p, {"until": [" ", "e"], "max_gen_toks": 12}) for p in prompts]
    long = [(p, {"until": [], "max_gen_toks": 9}) for p in prompts]
    sampled = [(p, {"until": ["\n"], "max_gen_toks": 10, "do_sample": True, "temperature": 1.0}) for p in prompts]
    reqs = _requests("generate_until", greedy + long + sampled)
    first = lm.generate_until(reqs)
    raw = generate(lm.scorer.model, lm.scorer.patcher, prompts, max_new_bytes=12)
    for text, r in zip(first[:4], raw, strict=True):
        data = text.encode("utf-8")
        assert b" " not in data and b"e" not in data and r.startswith(data)
        assert data == r.split(b" ")[0].split(b"e")[0]  # cut before the stop strings, as lm-eval cuts
    raw9 = generate(lm.scorer.model, lm.scorer.patcher, prompts, max_new_bytes=9)
    assert first[4:8] == [r.decode("utf-8", errors="replace") for r in raw9]  # the byte limit
    assert all(len(r) <= 9 for r in raw9)
    before = lm.batch_size
    try:
        lm.batch_size = 1  # batch composition changes neither greedy nor seeded sampled outputs
        assert lm.generate_until(reqs) == first
    finally:
        lm.batch_size = before


def test_generate_until_speculative_gives_the_greedy_bytes(lm, run_dir):
    """``BltLM(speculative=K)``: greedy requests come out byte for byte as without it."""
    from blt.core.errors import InputError
    from blt.evaluation.lm_eval_adapter import BltLM

    reqs = _requests("generate_until", [(p, {"until": ["\n"], "max_gen_toks": 20})
                                        for p in ["And God said", "In the beginning", "x"]])
    fast = BltLM(str(run_dir), batch_size=4, progress=False, speculative="6")
    assert fast.speculative == 6
    assert fast.generate_until(reqs) == lm.generate_until(reqs)
    with pytest.raises(InputError, match="cached generation"):
        BltLM(str(run_dir), progress=False, cache=False, speculative=4)


def test_generate_until_refuses_unsupported_options(lm):
    from blt.core.errors import InputError

    with pytest.raises(InputError, match="num_beams"):
        lm.generate_until(_requests("generate_until", [("Hi", {"until": ["\n"], "num_beams": 4})]))
    with pytest.raises(InputError, match="non-empty context"):
        lm.generate_until(_requests("generate_until", [("", {"until": ["\n"]})]))


@given(st.text(max_size=30), st.lists(st.text(min_size=1, max_size=3), max_size=3))
def test_cut_at_stop_equals_lm_evals_text_split(text, stops):
    """Cutting the UTF-8 bytes equals lm-eval's own rule on text (``s.split(term)[0]`` per term)."""
    pytest.importorskip("lm_eval")
    from blt.evaluation.lm_eval_adapter import cut_at_stop

    want = text
    for term in stops:
        want = want.split(term)[0]
    assert cut_at_stop(text.encode("utf-8"), [s.encode("utf-8") for s in stops]) == want.encode("utf-8")


def test_registered_with_lm_eval(run_dir):
    pytest.importorskip("lm_eval")
    from lm_eval.api.registry import get_model

    from blt.evaluation.lm_eval_adapter import BltLM

    assert get_model("blt") is BltLM
    lm = BltLM.create_from_arg_string(f"path={run_dir},batch_size=3,progress=False")
    assert lm.batch_size == 3 and lm.scorer.seq_len == SEQ_LEN


def test_converted_hugging_face_checkpoint_matches_the_port(tmp_path):
    """A Hugging Face BLT checkpoint (random tiny port model, entropy patching in its forward):
    rolling and continuation log-likelihoods equal the port's own log-softmax over its logits."""
    pytest.importorskip("lm_eval")
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "BltForCausalLM"):
        pytest.skip("this transformers has no BLT port")
    import torch
    from test_interop import make_hf

    from blt.evaluation.lm_eval_adapter import BltLM
    from blt.tokens import encode

    port = make_hf()
    port.save_pretrained(tmp_path)
    lm = BltLM(str(tmp_path), progress=False)
    text = "And God said, Let there be light: and there was light. " * 2
    ids = encode(text, eos=False)[None]
    with torch.no_grad():
        logp = torch.log_softmax(port(input_ids=ids, use_cache=False).logits.double()[0, :-1], -1)
    per_byte = logp.gather(-1, ids[0, 1:, None])[:, 0]
    (rolling,) = lm.loglikelihood_rolling(_requests("loglikelihood_rolling", [(text,)]))
    assert rolling == pytest.approx(float(per_byte.sum()), rel=1e-5)
    ((ll, _),) = lm.loglikelihood(_requests("loglikelihood", [(text[:20], text[20:])]))
    assert ll == pytest.approx(float(per_byte[20:].sum()), rel=1e-5)


# --- one-line errors ---------------------------------------------------------------------------------

def test_unknown_task_is_one_line(run_dir, local_tasks, capsys):
    pytest.importorskip("lm_eval")
    _fails(capsys, ["lm-eval", str(run_dir), "--tasks", "blt_tiny_mcc", "--include-path", str(local_tasks)],
           "unknown lm-eval task", "blt_tiny_mcc", "did you mean 'blt_tiny_mc'")


def test_bad_arguments_are_one_line(run_dir, tmp_path, capsys):
    _fails(capsys, ["lm-eval", str(run_dir), "--tasks", "x", "--limit", "0"], "--limit")
    _fails(capsys, ["lm-eval", str(run_dir), "--tasks", "x", "--include-path", str(tmp_path / "nowhere")], "not a directory")
    _fails(capsys, ["lm-eval", str(run_dir), "--tasks", " , "], "--tasks")
    _fails(capsys, ["lm-eval", str(run_dir), "--tasks", "x", "--speculative", "0"], "--speculative")


def test_relative_data_files_resolve_from_the_current_directory(run_dir, tmp_path, monkeypatch, capsys):
    """The shipped YAMLs name their data relative to the repository root; elsewhere: one line."""
    pytest.importorskip("lm_eval")
    monkeypatch.chdir(tmp_path)
    _fails(capsys, ["lm-eval", str(run_dir), "--tasks", "blt_tiny_mc", "--include-path", str(TASKS)],
           "data file is missing", "blt_tiny_mc.jsonl", "current directory")


def test_missing_lm_eval_names_the_extra(run_dir, monkeypatch, capsys):
    """lm-eval absent (its modules blocked): one line naming ``pip install 'blt-lab[eval]'``."""
    for name in [m for m in sys.modules if m == "lm_eval" or m.startswith("lm_eval.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "lm_eval", None)
    monkeypatch.delitem(sys.modules, "blt.evaluation.lm_eval_adapter", raising=False)
    _fails(capsys, ["lm-eval", str(run_dir), "--tasks", "blt_tiny_mc"], "lm-evaluation-harness is not installed",
           "pip install 'blt-lab[eval]'")
    from blt.core.errors import UnavailableError

    with pytest.raises(ImportError) as info:
        import blt.evaluation.lm_eval_adapter  # noqa: F401
    assert isinstance(info.value, UnavailableError) and "\n" not in str(info.value)
    monkeypatch.delitem(sys.modules, "blt.evaluation.lm_eval_adapter", raising=False)

