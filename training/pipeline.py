"""The one scikit-learn Pipeline (ColumnTransformer from the contract's feature types, then the estimator), the
estimators it can carry, and the fallback model exported from its compiled form."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from functions.shared.contract import DataContract
from training.candidates import CANDIDATE_KINDS, FACTORY_PATTERN, USER_MODELS_PACKAGE
from training.inference import (
    CATEGORICAL_BLOCK,
    MODEL_STEP,
    NUMERIC_BLOCK,
    PREPROCESS_STEP,
    UnsupportedPipelineError,
    compile_linear,
    compile_preprocessor,
)

FALLBACK_FORMAT = "mlloop-logistic-fallback/1"


def _from_factory(spec: str, *, seed: int, params: dict[str, Any]) -> Any:
    """Call a user's factory: `make(*, seed, **params)` returning an unfitted binary classifier with predict_proba."""
    module_name, function_name = spec.split(":")
    factory = getattr(importlib.import_module(module_name), function_name, None)
    if not callable(factory):
        raise ValueError(f"candidate: {module_name} has no function {function_name!r}")
    estimator = factory(seed=seed, **params)
    if not is_classifier(estimator) or not hasattr(estimator, "predict_proba"):
        raise ValueError(
            f"candidate: {spec} returned {type(estimator).__name__}, not a scikit-learn classifier with predict_proba"
        )
    if hasattr(estimator, "classes_"):
        raise ValueError(f"candidate: {spec} returned a fitted estimator; return it unfitted, training fits it")
    return estimator


def copy_estimator_code(pipeline: Pipeline, code_dir: Path) -> list[str]:
    """Copy the module defining the pipeline's estimator class into `code_dir` when it is the user's own (under
    training.models), with its package's __init__ files; returns the archive paths written."""
    module_name = type(pipeline.named_steps[MODEL_STEP]).__module__
    if not module_name.startswith(USER_MODELS_PACKAGE + "."):
        return []
    module = importlib.import_module(module_name)
    relative = Path(*module_name.split(".")).with_suffix(".py")
    written = []
    package_dir = Path(module.__file__ or "").parent
    for depth in range(1, len(relative.parts)):
        init = Path(*relative.parts[:depth]) / "__init__.py"
        (code_dir / init).parent.mkdir(parents=True, exist_ok=True)
        (code_dir / init).touch()
        written.append(f"code/{init.as_posix()}")
    shutil.copyfile(package_dir / relative.name, code_dir / relative)
    written.append(f"code/{relative.as_posix()}")
    return written


def numeric_columns(contract: DataContract) -> list[str]:
    """Integer, float and boolean features: booleans enter the model as 0/1 numbers."""
    return [f.name for f in contract.features if f.is_numeric or f.type == "boolean"]


def categorical_columns(contract: DataContract) -> list[str]:
    return [f.name for f in contract.categorical_features]


def build_preprocessor(contract: DataContract) -> ColumnTransformer:
    """Median-impute and standardize numbers; one-hot categories with the contract's vocabulary, so a missing or
    unseen category encodes as all zeros and every model sees the same columns whatever the training sample."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = OneHotEncoder(
        categories=[list(f.categories) for f in contract.categorical_features],
        handle_unknown="ignore",
        sparse_output=False,
        dtype=np.float64,
    )
    return ColumnTransformer(
        [
            (NUMERIC_BLOCK, numeric, numeric_columns(contract)),
            (CATEGORICAL_BLOCK, categorical, categorical_columns(contract)),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def make_baseline(*, seed: int, regularization: float = 1.0) -> LogisticRegression:
    return LogisticRegression(C=regularization, max_iter=2000, random_state=seed)


def make_candidate(kind: str, *, seed: int, params: dict[str, Any] | None = None) -> Any:
    """The stronger model the baseline must be beaten by; `params` are the estimator's own keyword arguments."""
    options = dict(params or {})
    if kind == "hist_gradient_boosting":
        defaults: dict[str, Any] = {
            "max_iter": 100,
            "learning_rate": 0.1,
            "max_leaf_nodes": 15,
            "l2_regularization": 1.0,
        }
        return HistGradientBoostingClassifier(random_state=seed, **{**defaults, **options})
    if kind == "random_forest":
        return RandomForestClassifier(
            random_state=seed, n_jobs=1, **{"n_estimators": 200, "min_samples_leaf": 20, **options}
        )
    if kind == "logistic_regression":
        return LogisticRegression(random_state=seed, max_iter=2000, **options)
    if FACTORY_PATTERN.match(kind):
        return _from_factory(kind, seed=seed, params=options)
    raise ValueError(f"candidate: {kind!r} is not one of {', '.join(CANDIDATE_KINDS)}")


def build_pipeline(contract: DataContract, estimator: Any) -> Pipeline:
    return Pipeline([(PREPROCESS_STEP, build_preprocessor(contract)), (MODEL_STEP, estimator)])


def model_input(frame: pd.DataFrame, contract: DataContract) -> pd.DataFrame:
    """The feature columns in contract order, with missing categories as None (what serving sends)."""
    features = frame[contract.feature_names].copy()
    for name in categorical_columns(contract):
        column = features[name].astype(object)
        features[name] = column.where(column.notna(), None)
    return features


def positive_probabilities(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    return np.asarray(pipeline.predict_proba(features)[:, 1], dtype=np.float64)


def export_fallback(
    pipeline: Pipeline, *, threshold: float, model_version: str, contract: DataContract
) -> dict[str, Any]:
    """The fitted logistic pipeline as JSON that functions/shared/fallback_model.py evaluates in pure Python."""
    compiled = compile_preprocessor(pipeline.named_steps[PREPROCESS_STEP])
    linear = compile_linear(pipeline.named_steps[MODEL_STEP], compiled)
    if linear is None:
        raise UnsupportedPipelineError("only a binary logistic-regression pipeline exports as the fallback model")
    width = len(compiled.numeric_features)
    numeric = [
        {
            "name": name,
            "type": contract.feature(name).type,
            "fill": compiled.fill_values[i],
            "mean": compiled.means[i],
            "scale": compiled.scales[i],
            "coefficient": linear.coefficients[i],
        }
        for i, name in enumerate(compiled.numeric_features)
    ]
    categorical = []
    offset = width
    for name, vocabulary in zip(compiled.categorical_features, compiled.vocabularies, strict=True):
        categorical.append(
            {
                "name": name,
                "coefficients": {value: linear.coefficients[offset + j] for j, value in enumerate(vocabulary)},
            }
        )
        offset += len(vocabulary)
    return {
        "format": FALLBACK_FORMAT,
        "model_version": model_version,
        "contract_ref": contract.ref,
        "threshold": threshold,
        "intercept": linear.raw_intercept,
        "numeric": numeric,
        "categorical": categorical,
    }
