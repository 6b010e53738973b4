"""Review points that must hold everywhere, checked mechanically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from keel.errors import InvalidRequest, ServiceError, all_error_codes
from keel.settings import Settings

REPO = Path(__file__).resolve().parents[3]


def test_every_setting_is_documented() -> None:
    doc = (REPO / "docs" / "deployment.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        assert f"`KEEL_{name.upper()}`" in doc, f"KEEL_{name.upper()} is not documented in docs/deployment.md"


def test_every_contract_section_is_documented() -> None:
    from keel.contract import Contract

    doc = (REPO / "docs" / "contract.md").read_text(encoding="utf-8")
    for name in Contract.model_fields:
        if name not in ("version", "name"):
            assert f"### `{name}`" in doc, f"contract section {name} is not documented in docs/contract.md"


def test_error_codes_are_unique_and_client_errors_are_4xx() -> None:
    seen: dict[str, type[ServiceError]] = {}
    stack = list(ServiceError.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        assert cls.code not in seen, f"{cls.__name__} reuses code {cls.code} of {seen[cls.code].__name__}"
        seen[cls.code] = cls
    codes = all_error_codes()
    for code in InvalidRequest.CODES:
        assert codes[code] == 400


def test_every_error_code_is_documented_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    undocumented = [code for code in all_error_codes() if f"`{code}`" not in readme]
    # Codes of later features are documented with them; these are the ones the API can return today.
    assert not [
        c for c in undocumented if c not in {"forbidden", "policy_violation", "upstream_error", "model_unavailable"}
    ]


def test_importing_keel_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, keel, keel.contract, keel.errors, keel.settings, keel.cli.main;"
        "heavy = [m for m in ('llama_cpp', 'onnxruntime', 'onnx', 'numpy', 'fastapi', 'tokenizers',"
        " 'opentelemetry.sdk') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_every_evaluation_metric_is_documented() -> None:
    from keel.evals.suite import METRICS

    doc = (REPO / "docs" / "evals.md").read_text(encoding="utf-8")
    missing = [m for m in METRICS if f"`{m}`" not in doc]
    assert missing == []
