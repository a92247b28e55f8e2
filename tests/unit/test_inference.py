"""inference.py: parity with the saved pipeline on every path, the wire format, and client errors for bad payloads."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.unit.training_support import trained
from training import inference
from training.inference import InferencePayloadError, compile_preprocessor, input_fn, model_fn, output_fn, predict_fn
from training.pipeline import model_input, positive_probabilities

pytestmark = pytest.mark.xdist_group("training")

KINDS = ["default", "candidate"]
PARITY = 1e-12


def _records(frame: pd.DataFrame, contract: Any, rows: int) -> list[dict[str, Any]]:
    features = model_input(frame.head(rows), contract).astype(object)
    records = features.to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in records]


def _json_body(record: dict[str, Any]) -> str:
    return json.dumps({k: (v.item() if isinstance(v, np.generic) else v) for k, v in record.items()})


def _invoke(model: inference.ServingModel, body: str, content_type: str = "application/json") -> dict[str, Any]:
    return json.loads(output_fn(predict_fn(input_fn(body, content_type), model), "application/json"))


@pytest.fixture(scope="module", params=KINDS)
def served(request: pytest.FixtureRequest) -> tuple[Any, inference.ServingModel]:
    model = trained(request.param)
    return model, model_fn(str(model.model_dir))


def test_given_the_fitted_preprocessor_when_compiled_then_it_transforms_exactly_like_the_column_transformer(
    served: Any,
) -> None:
    model, _ = served
    test = model_input(model.result.split.test, model.contract)
    expected = model.result.pipeline.named_steps["preprocess"].transform(test)
    compiled = compile_preprocessor(model.result.pipeline.named_steps["preprocess"])
    numeric = test[list(compiled.numeric_features)].astype(np.float64).to_numpy()
    codes = [
        pd.Categorical(test[name], categories=list(vocab)).codes.astype(np.int64)
        for name, vocab in zip(compiled.categorical_features, compiled.vocabularies, strict=True)
    ]
    assert np.max(np.abs(compiled.transform_columns(numeric, codes) - expected)) <= PARITY


def test_given_single_json_records_when_invoked_then_probabilities_equal_the_saved_pipeline(served: Any) -> None:
    model, serving = served
    records = _records(model.result.split.test, model.contract, 40)
    expected = positive_probabilities(
        model.result.pipeline, model_input(model.result.split.test.head(40), model.contract)
    )
    got = [_invoke(serving, _json_body(r))["predictions"][0]["probability"] for r in records]
    assert np.max(np.abs(np.array(got) - expected)) <= PARITY


def test_given_instances_and_csv_batches_when_invoked_then_both_equal_the_saved_pipeline(served: Any) -> None:
    model, serving = served
    test = model.result.split.test.head(300)
    expected = positive_probabilities(model.result.pipeline, model_input(test, model.contract))
    body = json.dumps({"instances": [json.loads(_json_body(r)) for r in _records(test, model.contract, 300)]})
    from_json = [p["probability"] for p in _invoke(serving, body)["predictions"]]
    csv_body = test[model.contract.feature_names].to_csv(header=False, index=False)
    from_csv = [p["probability"] for p in _invoke(serving, csv_body, "text/csv")["predictions"]]
    assert np.max(np.abs(np.array(from_json) - expected)) <= PARITY
    assert np.max(np.abs(np.array(from_csv) - expected)) <= PARITY


def test_given_a_record_when_answered_then_the_response_carries_label_threshold_and_model_version(served: Any) -> None:
    model, serving = served
    response = _invoke(serving, _json_body(_records(model.result.split.test, model.contract, 1)[0]))
    prediction = response["predictions"][0]
    assert response["threshold"] == model.result.threshold
    assert prediction["label"] == int(prediction["probability"] >= response["threshold"])
    assert response["model_version"] == model.result.metadata["model_version"]


def test_given_model_version_in_the_environment_then_it_overrides_the_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_VERSION", "churn-model/7")
    assert model_fn(str(trained().model_dir)).model_version == "churn-model/7"


VALID = {
    "tenure_months": 12,
    "monthly_charges": 55.5,
    "total_charges": None,
    "support_calls_90d": 2,
    "data_usage_gb": 20.0,
    "days_since_last_login": 3,
    "discount_pct": 0.0,
    "plan": "basic",
    "contract_type": "one_year",
    "region": "north",
    "payment_method": None,
    "auto_renew": True,
}


@pytest.mark.parametrize(
    ("body", "content_type", "field"),
    [
        ("{not json", "application/json", "body"),
        ("[1, 2]", "application/json", "body"),
        ('{"instances": []}', "application/json", "instances"),
        (json.dumps({**VALID, "plan": "platinum"}), "application/json", "plan"),
        (json.dumps({**VALID, "tenure_months": None}), "application/json", "tenure_months"),
        (json.dumps({k: v for k, v in VALID.items() if k != "region"}), "application/json", "region"),
        (json.dumps({**VALID, "monthly_charges": "cheap"}), "application/json", "monthly_charges"),
        (json.dumps({**VALID, "discount_pct": 140}), "application/json", "discount_pct"),
        (json.dumps({**VALID, "auto_renew": "maybe"}), "application/json", "auto_renew"),
        (json.dumps({**VALID, "tenure_monthz": 3}), "application/json", "tenure_monthz"),
        (json.dumps({"instances": [VALID, {**VALID, "plan": 3}]}), "application/json", "instances[1].plan"),
        ("1,2,3\n", "text/csv", "csv"),
        (
            "12,55.5,,2,20.0,3,0.0,basic,one_year,north,,True\n12,abc,,2,20.0,3,0.0,basic,one_year,north,,True\n",
            "text/csv",
            "monthly_charges",
        ),
        ("12,55.5,,2,20.0,3,0.0,gold,one_year,north,,True\n", "text/csv", "plan"),
        ("a,b", "application/xml", "content_type"),
    ],
)
def test_given_a_malformed_payload_when_invoked_then_a_client_error_names_the_problem(
    body: str, content_type: str, field: str
) -> None:
    serving = model_fn(str(trained().model_dir))
    with pytest.raises(InferencePayloadError) as caught:
        predict_fn(input_fn(body, content_type), serving)
    error = caught.value
    assert 400 <= error.status_code < 500
    assert field in error.fields
    assert json.loads(error.body) == {"error": error.message, "fields": error.fields}
    assert "Traceback" not in error.message


def test_given_a_valid_csv_row_and_record_then_both_paths_agree() -> None:
    serving = model_fn(str(trained().model_dir))
    row = "12,55.5,,2,20.0,3,0.0,basic,one_year,north,,True\n"
    from_csv = _invoke(serving, row, "text/csv")["predictions"][0]["probability"]
    from_json = _invoke(serving, json.dumps(VALID))["predictions"][0]["probability"]
    assert abs(from_csv - from_json) <= PARITY


@pytest.mark.slow
def test_given_only_the_model_archive_when_served_then_inference_needs_nothing_from_the_project(tmp_path: Path) -> None:
    model_dir = tmp_path / "opt-ml-model"
    shutil.copytree(trained().model_dir, model_dir)
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(model_dir / 'code')!r})\n"
        "import inference\n"
        f"m = inference.model_fn({str(model_dir)!r})\n"
        f"payload = inference.input_fn({json.dumps(VALID)!r}, 'application/json')\n"
        "print(inference.output_fn(inference.predict_fn(payload, m), 'application/json'))\n"
        "assert not any(n.split('.')[0] in ('training', 'functions', 'mlloop') for n in sys.modules)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["predictions"][0]["label"] in (0, 1)


@pytest.fixture(params=["pyarrow", "pandas"])
def csv_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The container may lack pyarrow: the pandas CSV path must give the same answers and errors."""
    if request.param == "pandas":
        monkeypatch.setattr(inference, "_pyarrow_csv", None)
    return str(request.param)


def test_given_either_csv_parser_when_scoring_then_answers_match_the_pipeline(csv_parser: str) -> None:
    model = trained()
    serving = model_fn(str(model.model_dir))
    test = model.result.split.test.head(200)
    expected = positive_probabilities(model.result.pipeline, model_input(test, model.contract))
    text = test[model.contract.feature_names].to_csv(header=False, index=False) + "\n"
    got = [p["probability"] for p in _invoke(serving, text, "text/csv")["predictions"]]
    assert np.max(np.abs(np.array(got) - expected)) <= PARITY


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("12,55.5,,2,20.0,3,0.0,basic,one_year,north,,maybe\n", "auto_renew"),
        ("12,55.5,,2,20.0,3,0.0,basic,one_year,,,true\n", "region"),
        ("12,55.5,,2,20.0,3,0.0,gold,one_year,north,,1\n", "plan"),
        ("12,x,,2,20.0,3,0.0,basic,one_year,north,,1\n", "monthly_charges"),
        (",55.5,,2,20.0,3,0.0,basic,one_year,north,,1\n", "tenure_months"),
        ("12.5,55.5,,2,20.0,3,0.0,basic,one_year,north,,1\n", "tenure_months"),
    ],
)
def test_given_either_csv_parser_when_a_value_breaks_the_contract_then_the_column_is_named(
    csv_parser: str, row: str, field: str
) -> None:
    serving = model_fn(str(trained().model_dir))
    with pytest.raises(InferencePayloadError) as caught:
        predict_fn(input_fn(row, "text/csv"), serving)
    assert field in caught.value.fields


def test_given_boolean_spellings_in_csv_then_they_score_like_json_booleans() -> None:
    serving = model_fn(str(trained().model_dir))
    rows = [f"12,55.5,,2,20.0,3,0.0,basic,one_year,north,,{spelling}" for spelling in ("True", "true", "1")]
    got = [p["probability"] for p in _invoke(serving, "\n".join(rows), "text/csv")["predictions"]]
    assert got[0] == got[1] == got[2]
    assert abs(got[0] - _invoke(serving, json.dumps(VALID))["predictions"][0]["probability"]) <= PARITY


@pytest.mark.parametrize("rows", [3, 500])
def test_given_extreme_probabilities_when_rendered_then_the_body_is_valid_json_with_exact_labels(rows: int) -> None:
    probabilities = np.resize(np.array([0.0, 1.0, 0.5, 1e-13, 0.999999999999]), rows)
    body = json.loads(f"[{inference.render_predictions(probabilities, 0.5)}]")
    assert [p["label"] for p in body] == [int(p >= 0.5) for p in probabilities]
    assert np.max(np.abs(np.array([p["probability"] for p in body]) - probabilities)) <= 5e-13


def test_given_single_records_then_the_compiled_fast_path_equals_the_pipeline_to_the_last_bits(served: Any) -> None:
    model, serving = served
    test = model.result.split.test.head(60)
    expected = positive_probabilities(model.result.pipeline, model_input(test, model.contract))
    got = [serving.score_records([r], batched=False)[0] for r in _records(test, model.contract, 60)]
    assert np.max(np.abs(np.array(got) - expected)) <= 1e-15
    fast_path = serving.linear if model.result.chosen == "baseline" else serving.trees
    assert fast_path is not None


def test_given_missing_values_reaching_the_trees_then_they_follow_the_learned_side() -> None:
    model = trained("candidate")
    serving = model_fn(str(model.model_dir))
    assert serving.trees is not None
    rows = model.result.pipeline.named_steps["preprocess"].transform(
        model_input(model.result.split.test.head(30), model.contract)
    )
    rows[::2, 0] = np.nan
    rows[1::3, 3] = np.nan
    expected = serving.estimator.predict_proba(rows)[:, 1]
    got = [float(inference.expit(serving.trees.raw_score(row.tolist()))) for row in rows]
    assert np.max(np.abs(np.array(got) - expected)) <= 1e-15
