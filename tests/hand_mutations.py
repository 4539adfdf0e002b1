"""The hand-made mutations of tests/MUTATION.md: each is applied to a copy of the tree, the
named tests are run there, and the verdict printed (KILLED: a test failed).

    python tests/hand_mutations.py [WORDS…]   # only the mutations whose name holds a word

Not collected by pytest (the name does not start with test_).
"""
import pathlib
import shutil
import subprocess
import sys
import tempfile

SRC = pathlib.Path(__file__).resolve().parents[1]
DST = pathlib.Path(tempfile.mkdtemp(prefix="hgda-mutation-")) / "tree"
MUTATIONS = [
    ("method name in the fine-tuning seed", "hgda_core/adapt.py",
     "                config.weight_decay, config.grad_clip, tune_seed, encoder_lr,",
     "                config.weight_decay, config.grad_clip, derive_seed(seed, 'adapt-tune', corpus.name, k, r, method), encoder_lr,",
     "tests/test_adapt.py"),
    ("evaluate scores gold against gold", "hgda_core/adapt.py",
     "    return entity_scores([s.tags for s in test_sentences], pred).as_dict()",
     "    return entity_scores([s.tags for s in test_sentences], [list(s.tags) for s in test_sentences]).as_dict()",
     "tests/test_adapt.py"),
    ("no archive escape check", "hgda_core/download.py",
     "        if not target.is_relative_to(root):", "        if False:", "tests/test_download.py"),
    ("no data filter", "hgda_core/download.py",
     '            tar.extract(member, root, filter="data")', '            tar.extract(member, root, filter="fully_trusted")',
     "tests/test_download.py"),
    ("no escape check and no data filter", "hgda_core/download.py",
     ['        if not target.is_relative_to(root):', '            tar.extract(member, root, filter="data")'],
     ['        if False:', '            tar.extract(member, root, filter="fully_trusted")'], "tests/test_download.py"),
    ("no plain-path check", "hgda_core/download.py",
     "        if _normalise_member(member.name) != name:", "        if False:", "tests/test_download.py"),
    ("MetaNER reversal scale constant -1", "hgda_core/meta.py",
     "        return -self.lam if self.adversarial else self.lam", "        return -1.0 if self.adversarial else self.lam",
     "tests/test_meta.py tests/test_metatrain.py"),
    ("iMAML proximal term sign flipped", "hgda_core/meta.py",
     "(reg * (p - start[n]) if implicit else 0.0)", "(reg * (start[n] - p) if implicit else 0.0)", "tests/test_meta.py"),
    ("best state not restored", "hgda_core/trainer.py",
     "    model.load_trainable_state(best_state)\n", "", "tests/test_trainer.py"),
    ("patience off by one", "hgda_core/trainer.py",
     "        if bad >= config.patience:", "        if bad > config.patience:", "tests/test_trainer.py"),
    ("best state not copied at improvement", "hgda_core/trainer.py",
     "                best_state = copy.deepcopy(model.trainable_state())\n", "", "tests/test_trainer.py"),
    ("hgda falls back to uniform weights", "hgda_core/methods.py",
     '"hgda": MethodSpec("hgda", "meta", "hardness"', '"hgda": MethodSpec("hgda", "meta", "uniform"', "tests/test_metatrain.py"),
    ("transfer keeps lambda", "hgda_core/metatrain.py",
     'lam=0.0 if spec.learner == "transfer" else params.lam,', "lam=params.lam,", "tests/test_metatrain.py"),
    ("outer lab set ignored", "hgda_core/meta.py",
     '        return batch.support if self.config.outer_lab_set == "support" else batch.query',
     '        return batch.support', "tests/test_meta.py"),
    ("theta inner rate scale ignored", "hgda_core/meta.py",
     'rate = {n: beta * (self.config.theta_lr_scale if param_group(n) == "theta" else 1.0) for n in start}',
     'rate = {n: beta for n in start}', "tests/test_meta.py"),
    ("query and support rows swapped in the inner loss", "hgda_core/meta.py",
     "            lab, cls = self.losses(fast, batch, batch.support, batch.query)",
     "            lab, cls = self.losses(fast, batch, batch.query, batch.support)", "tests/test_meta.py"),
    ("significance marks on every tested cell", "hgda_core/report/tables.py",
     'significance[significance["significant"] & significance["baseline"].isin(MARKS)]',
     'significance[significance["baseline"].isin(MARKS)]', "tests/test_report.py"),
    ("bold on the minimum", "hgda_core/tables.py", "    best = values.max(axis=axis)", "    best = values.min(axis=axis)",
     "tests/test_report.py"),
    ("small hardness totals fall back to uniform", "hgda_core/hardness.py",
     "    if not torch.isfinite(total) or total <= 0:", "    if not torch.isfinite(total) or total <= 1:", "tests/test_meta.py"),
    ("a log key renamed", "hgda_core/trainer.py", '"gamma_omega": step', '"GAMMA_OMEGA": step', "tests/test_trainer.py"),
    ("K check in the stage removed", "stages/adapt.py",
     '            draw_for(corpus, k, 0, params["seed"], config.sampling)  # K too large: this error, before any work\n', "            pass\n",
     "tests/test_adapt.py"),
]
only = sys.argv[1:]
for name, path, old, new, tests in MUTATIONS:
    if only and not any(o in name for o in only):
        continue
    if DST.exists():
        shutil.rmtree(DST)
    shutil.copytree(SRC, DST, ignore=shutil.ignore_patterns(".venv", "data", "models", ".git", "mutants", "__pycache__"))
    f = DST / path
    text = f.read_text()
    olds, news = (old, new) if isinstance(old, list) else ([old], [new])
    for o, n in zip(olds, news):
        assert o in text, (name, o)
        text = text.replace(o, n)
    f.write_text(text)
    r = subprocess.run(f"{sys.executable} -m pytest -q -x -p no:cacheprovider {tests}", shell=True, cwd=DST,
                       capture_output=True, text=True)
    last = [l for l in r.stdout.splitlines() if l.strip()][-1] if r.stdout.strip() else r.stderr[-200:]
    failing = [l.split(" ")[1] for l in r.stdout.splitlines() if l.startswith("FAILED")]
    print(f"{'KILLED' if r.returncode else 'SURVIVED'} | {name} | {failing[:2]} | {last}", flush=True)
shutil.rmtree(DST.parent, ignore_errors=True)
