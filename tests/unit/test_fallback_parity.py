"""The fallback JSON evaluated in pure Python reproduces the scikit-learn baseline within 1e-9."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from functions.shared.fallback_model import FallbackModel, FallbackModelError
from tests.unit.training_support import trained
from training.pipeline import model_input, positive_probabilities

pytestmark = pytest.mark.xdist_group("training")

REPO = Path(__file__).resolve().parents[2]


def _records(frame: object) -> list[dict[str, object]]:
    rows = frame.astype(object).to_dict(orient="records")  # type: ignore[attr-defined]
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]


@pytest.mark.parametrize("kind", ["default", "candidate"])
def test_given_the_exported_fallback_when_scored_then_it_matches_the_sklearn_baseline_on_the_test_set(
    kind: str,
) -> None:
    model = trained(kind)
    document = json.loads((model.model_dir / "fallback_model.json").read_text())
    fallback = FallbackModel.from_dict(document)
    test = model_input(model.result.split.test, model.contract)
    expected = positive_probabilities(model.result.baseline_pipeline, test)
    got = np.array(fallback.predict_proba(_records(test)))
    assert np.max(np.abs(got - expected)) <= 1e-9
    assert fallback.threshold == model.result.evaluation["models"]["baseline"]["threshold"]
    assert fallback.model_version == model.result.metadata["model_version"]


def test_given_an_unseen_category_when_scored_then_the_fallback_treats_it_as_the_pipeline_does() -> None:
    model = trained()
    fallback = FallbackModel.from_dict(json.loads((model.model_dir / "fallback_model.json").read_text()))
    test = model_input(model.result.split.test.head(5), model.contract)
    test["region"] = "atlantis"
    expected = positive_probabilities(model.result.baseline_pipeline, test)
    assert np.max(np.abs(np.array(fallback.predict_proba(_records(test))) - expected)) <= 1e-9


def test_given_a_broken_document_then_loading_names_the_field() -> None:
    document = json.loads((trained().model_dir / "fallback_model.json").read_text())
    document["numeric"][0]["scale"] = "wide"
    with pytest.raises(FallbackModelError, match=r"numeric\[0\]\.scale"):
        FallbackModel.from_dict(document)


def test_given_the_front_door_when_it_imports_the_fallback_then_no_numeric_library_loads() -> None:
    script = (
        "import sys, functions.shared.fallback_model; print(sorted({'numpy', 'pandas', 'sklearn'} & set(sys.modules)))"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
