"""README's "Adapt it to your setup": every YAML snippet is a valid change to the main
job's spec, and the Python snippet compiles and imports what it names."""

import ast
import re

import yaml
from support import ROOT

from sweep.config import spec

README = (ROOT / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def test_every_adapt_snippet_parses_into_the_main_jobs_spec():
    adapt = _section("Adapt it to your setup")
    snippets = _blocks(adapt, "yaml")
    assert len(snippets) >= 4
    base = yaml.safe_load((ROOT / "configs" / "local.yaml").read_text())
    for text in snippets:
        change = yaml.safe_load(text)
        assert isinstance(change, dict) and change, text
        if change.get("model", {}).get("arch", "btlm-proxy") != "btlm-proxy":
            # a transformers architecture takes width, depth, heads and hf_config only
            base_model = {k: base["model"][k] for k in ("d_model", "n_layers", "n_heads")}
            merged = {**base, "model": {**base_model, **change["model"]}}
        else:
            merged = _merge(base, change)
        sw = spec.parse(merged)  # the corpus path is the reader's own: parse never reads it
        for section, fields in change.items():
            for key, value in fields.items():
                assert (
                    getattr(getattr(sw, section), key)
                    == (tuple(value) if isinstance(value, list) else value)
                    or key == "hf_config"
                ), (section, key)


def test_the_trainer_snippet_compiles_and_its_imports_exist():
    (code,) = _blocks(_section("Adapt it to your setup"), "python")
    tree = ast.parse(code)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = __import__(node.module, fromlist=[a.name for a in node.names])
            for alias in node.names:
                assert hasattr(mod, alias.name), (node.module, alias.name)


def test_readme_is_short_and_defines_l_max_and_e_before_using_them():
    assert len(README.splitlines()) <= 300
    first_use = {w: README.index(w) for w in ("**l_max**", "**E**")}
    body = README[README.index("## Run it") :]
    assert all(i < README.index("## Run it") for i in first_use.values()) and "l_max" in body
    for word in ("this project's machine", "this project's 2-core"):
        assert word not in README


def test_the_map_of_where_things_are_matches_the_tree():
    text = _section("Where things are")
    named = set(re.findall(r"`(sweep/[\w/]+\.py)`", text))
    for folder, names in re.findall(r"\| `(sweep/\w+)/` \| (.+?) \|\n", text):
        named |= {f"{folder}/{n}" for n in re.findall(r"`(\w+\.py)`", names)}
    modules = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "sweep").rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py") and "adapters" not in p.parts
    }
    assert named - modules == set()  # no module named that is not there
    assert modules - named == set()  # no module there that is not named
    assert len(modules) > 40
