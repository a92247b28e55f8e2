"""Model serving entry points for the SageMaker scikit-learn container: model_fn, input_fn, predict_fn, output_fn.

The serving container puts only the model's code/ folder on the path (plus scikit-learn, pandas and numpy), so
this module imports nothing from the project. It also holds `compile_pipeline`, which turns the fitted
ColumnTransformer into plain arrays (imputation values, scaler means and scales, one-hot vocabularies): the fast
single-row and batch paths apply that compiled form, and the training package exports the fallback model from it,
so there is exactly one preprocessing definition (the fitted pipeline) and everything else is derived from it.

Wire format. Request `application/json`: one record `{feature: value}` or `{"instances": [record, ...]}`;
`text/csv`: rows of feature values in contract feature order, no header. Response `application/json`:
`{"predictions": [{"probability": p, "label": 0|1}], "model_version": str, "threshold": float}`.
A malformed payload raises `InferencePayloadError` (HTTP 400) whose body is `{"error": ..., "fields": {...}}`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.special import expit

try:
    import pyarrow as _pyarrow
    import pyarrow.csv as _pyarrow_csv
except ImportError:  # the pandas CSV path serves the same answers, slower
    _pyarrow = None
    _pyarrow_csv = None

MODEL_FILE = "model.joblib"
METADATA_FILE = "model_metadata.json"
JSON_CONTENT_TYPE = "application/json"
CSV_CONTENT_TYPE = "text/csv"
PREPROCESS_STEP = "preprocess"
MODEL_STEP = "model"
NUMERIC_BLOCK = "numeric"
CATEGORICAL_BLOCK = "categorical"
# Probabilities go out with twelve decimals (exact to 5e-13). Small answers use a %-template (fastest for a few
# rows); large ones are written as fixed-width bytes with numpy, since formatting floats one by one in Python
# would cost as much as scoring them.
_PREDICTION_TEMPLATES = ('{"probability":%.12f,"label":0}', '{"probability":%.12f,"label":1}')
_ROW_TEMPLATE = b'{"probability":0.000000000000,"label":0},'
_INTEGER_DIGIT = len(b'{"probability":')
_LABEL_DIGIT = len(b'{"probability":0.000000000000,"label":')
_DECIMALS = 12
_VECTOR_RENDER_ROWS = 64
_FOUR_DIGITS = (48 + (np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1])) % 10).astype(np.uint8)
_TRUE_TEXT = frozenset({"true", "1", "1.0", "t", "yes"})
_FALSE_TEXT = frozenset({"false", "0", "0.0", "f", "no"})

FloatArray = npt.NDArray[np.float64]


class InferencePayloadError(ValueError):
    """A request the model cannot score; the local endpoint host and the front door map it to HTTP 400."""

    status_code = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = dict(fields or {})

    def to_body(self) -> dict[str, Any]:
        return {"error": self.message, "fields": self.fields}

    def to_json(self) -> str:
        return json.dumps(self.to_body())

    @property
    def body(self) -> str:
        """The response body the endpoint host sends with `status_code`."""
        return self.to_json()


class UnsupportedContentTypeError(InferencePayloadError):
    status_code = 415


class UnsupportedAcceptError(InferencePayloadError):
    status_code = 406


class UnsupportedPipelineError(TypeError):
    """The fitted pipeline has a shape the compiler does not know; compiling never guesses."""


@dataclass(frozen=True)
class FeatureSpec:
    """The slice of a contract feature that request validation needs."""

    name: str
    type: str
    nullable: bool
    minimum: float | None
    maximum: float | None
    categories: tuple[str, ...]

    @classmethod
    def from_contract_feature(cls, raw: dict[str, Any]) -> FeatureSpec:
        return cls(
            name=str(raw["name"]),
            type=str(raw["type"]),
            nullable=bool(raw.get("nullable", False)),
            minimum=None if raw.get("min") is None else float(raw["min"]),
            maximum=None if raw.get("max") is None else float(raw["max"]),
            categories=tuple(str(c) for c in raw.get("categories") or ()),
        )


@dataclass(frozen=True)
class CompiledPreprocessor:
    """The fitted ColumnTransformer as arrays: numeric block (impute, then standardize) then one-hot blocks."""

    numeric_features: tuple[str, ...]
    fill_values: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    categorical_features: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...], ...]

    @property
    def n_outputs(self) -> int:
        return len(self.numeric_features) + sum(len(v) for v in self.vocabularies)

    def transform_columns(
        self, numeric: FloatArray, category_codes: list[npt.NDArray[np.int64]]
    ) -> npt.NDArray[np.float64]:
        """Numeric values (NaN for missing, one column per numeric feature) and category codes (-1 for missing or
        unknown) to the model's input matrix, as the fitted ColumnTransformer would produce it."""
        n_rows = numeric.shape[0]
        out = np.zeros((n_rows, self.n_outputs), dtype=np.float64)
        width = len(self.numeric_features)
        if width:
            block = np.where(np.isnan(numeric), np.asarray(self.fill_values), numeric)
            block -= np.asarray(self.means)
            block /= np.asarray(self.scales)
            out[:, :width] = block
        offset = width
        rows = np.arange(n_rows)
        for codes, vocabulary in zip(category_codes, self.vocabularies, strict=True):
            known = codes >= 0
            out[rows[known], offset + codes[known]] = 1.0
            offset += len(vocabulary)
        return out


@dataclass(frozen=True)
class CompiledLinear:
    """A binary linear model over the compiled preprocessor, with standardization folded into the weights."""

    intercept: float
    numeric_weights: tuple[float, ...]
    category_weights: tuple[dict[str, float], ...]
    coefficients: tuple[float, ...]
    raw_intercept: float


def compile_preprocessor(preprocessor: Any) -> CompiledPreprocessor:
    """Read the fitted ColumnTransformer built by training.pipeline into arrays; refuse any other shape."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(preprocessor, ColumnTransformer) or not hasattr(preprocessor, "transformers_"):
        raise UnsupportedPipelineError("expected a fitted ColumnTransformer")
    numeric: tuple[str, ...] = ()
    fill: tuple[float, ...] = ()
    means: tuple[float, ...] = ()
    scales: tuple[float, ...] = ()
    categorical: tuple[str, ...] = ()
    vocabularies: tuple[tuple[str, ...], ...] = ()
    expected_order = [NUMERIC_BLOCK, CATEGORICAL_BLOCK]
    seen: list[str] = []
    for name, transformer, columns in preprocessor.transformers_:
        if name == "remainder":
            if transformer != "drop":
                raise UnsupportedPipelineError("the remainder must be dropped")
            continue
        seen.append(name)
        if name == NUMERIC_BLOCK:
            steps = dict(transformer.steps) if isinstance(transformer, Pipeline) else {}
            imputer, scaler = steps.get("impute"), steps.get("scale")
            if not isinstance(imputer, SimpleImputer) or not isinstance(scaler, StandardScaler) or len(steps) != 2:
                raise UnsupportedPipelineError(
                    "the numeric block must be Pipeline(impute=SimpleImputer, scale=StandardScaler)"
                )
            if imputer.add_indicator or len(imputer.statistics_) != len(columns):
                raise UnsupportedPipelineError("the numeric imputer must keep every column and add no indicator")
            statistics = [float(v) for v in imputer.statistics_]
            if any(math.isnan(v) for v in statistics):
                raise UnsupportedPipelineError("a numeric column had no values at fit time")
            numeric = tuple(str(c) for c in columns)
            fill = tuple(statistics)
            width = len(numeric)
            means = tuple(float(v) for v in scaler.mean_) if scaler.with_mean else (0.0,) * width
            scales = tuple(float(v) for v in scaler.scale_) if scaler.with_std else (1.0,) * width
        elif name == CATEGORICAL_BLOCK:
            if not isinstance(transformer, OneHotEncoder):
                raise UnsupportedPipelineError("the categorical block must be a OneHotEncoder")
            if transformer.drop is not None or transformer.handle_unknown != "ignore":
                raise UnsupportedPipelineError("the OneHotEncoder must keep every category and ignore unknown ones")
            if getattr(transformer, "_infrequent_enabled", False):
                raise UnsupportedPipelineError("infrequent-category grouping is not supported")
            categorical = tuple(str(c) for c in columns)
            vocabularies = tuple(tuple(str(v) for v in cats) for cats in transformer.categories_)
        else:
            raise UnsupportedPipelineError(f"unknown transformer block {name!r}")
    if seen != [b for b in expected_order if b in seen]:
        raise UnsupportedPipelineError("the numeric block must come before the categorical block")
    return CompiledPreprocessor(numeric, fill, means, scales, categorical, vocabularies)


@dataclass(frozen=True)
class CompiledTree:
    """One fitted regression tree as parallel lists, walked in plain Python for a single row."""

    feature: list[int]
    threshold: list[float]
    left: list[int]
    right: list[int]
    missing_left: list[bool]
    is_leaf: list[bool]
    value: list[float]


@dataclass(frozen=True)
class CompiledTrees:
    """A binary HistGradientBoostingClassifier: the baseline raw score plus one leaf value per tree."""

    baseline: float
    trees: tuple[CompiledTree, ...]

    def raw_score(self, row: list[float]) -> float:
        raw = self.baseline
        for tree in self.trees:
            node = 0
            while not tree.is_leaf[node]:
                x = row[tree.feature[node]]
                threshold = tree.threshold[node]
                if x <= threshold:
                    node = tree.left[node]
                # NaN fails both comparisons and follows the side the tree learned for missing values.
                elif x > threshold or not tree.missing_left[node]:
                    node = tree.right[node]
                else:
                    node = tree.left[node]
            raw += tree.value[node]
        return raw


def compile_trees(estimator: Any, compiled: CompiledPreprocessor) -> CompiledTrees | None:
    """Read a fitted binary HistGradientBoostingClassifier's trees for the single-row path; None for anything else
    (categorical splits, multiclass, other estimators), which then goes through the estimator itself.

    sklearn's own single-row predict_proba spends most of its time in per-call validation and one Python-level
    call per tree; walking the same nodes here gives the same sums in the same order at a fraction of the cost.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not isinstance(estimator, HistGradientBoostingClassifier) or estimator.n_trees_per_iteration_ != 1:
        return None
    if estimator.is_categorical_ is not None and bool(np.any(estimator.is_categorical_)):
        return None
    if estimator.n_features_in_ != compiled.n_outputs:
        raise UnsupportedPipelineError("the estimator's input width differs from the preprocessor's output")
    trees = []
    for (predictor,) in estimator._predictors:
        nodes = predictor.nodes
        if bool(np.any(nodes["is_categorical"])):
            return None
        trees.append(
            CompiledTree(
                feature=[int(v) for v in nodes["feature_idx"]],
                threshold=[float(v) for v in nodes["num_threshold"]],
                left=[int(v) for v in nodes["left"]],
                right=[int(v) for v in nodes["right"]],
                missing_left=[bool(v) for v in nodes["missing_go_to_left"]],
                is_leaf=[bool(v) for v in nodes["is_leaf"]],
                value=[float(v) for v in nodes["value"]],
            )
        )
    return CompiledTrees(baseline=float(np.ravel(estimator._baseline_prediction)[0]), trees=tuple(trees))


def compile_linear(estimator: Any, compiled: CompiledPreprocessor) -> CompiledLinear | None:
    """Fold the compiled preprocessing into a binary logistic regression; None for any other estimator."""
    from sklearn.linear_model import LogisticRegression

    if not isinstance(estimator, LogisticRegression) or estimator.coef_.shape[0] != 1:
        return None
    coefficients = tuple(float(v) for v in estimator.coef_[0])
    if len(coefficients) != compiled.n_outputs:
        raise UnsupportedPipelineError("the estimator's input width differs from the preprocessor's output")
    raw_intercept = float(estimator.intercept_[0])
    width = len(compiled.numeric_features)
    weights = tuple(coefficients[i] / compiled.scales[i] for i in range(width))
    intercept = raw_intercept - sum(weights[i] * compiled.means[i] for i in range(width))
    category_weights: list[dict[str, float]] = []
    offset = width
    for vocabulary in compiled.vocabularies:
        category_weights.append({value: coefficients[offset + j] for j, value in enumerate(vocabulary)})
        offset += len(vocabulary)
    return CompiledLinear(intercept, weights, tuple(category_weights), coefficients, raw_intercept)


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class ServingModel:
    """What model_fn returns: the fitted pipeline, its compiled form, the request schema and the threshold."""

    def __init__(self, pipeline: Any, metadata: dict[str, Any], model_version: str) -> None:
        self.pipeline = pipeline
        self.metadata = metadata
        self.model_version = model_version
        self.threshold = float(metadata["threshold"])
        contract = metadata["contract"]
        self.features = tuple(FeatureSpec.from_contract_feature(f) for f in contract["features"])
        self.feature_names = tuple(f.name for f in self.features)
        self._allowed_extra = frozenset({str(contract.get("entity_key", "")), str(contract.get("event_timestamp", ""))})
        self._by_name = {f.name: f for f in self.features}
        self.preprocessor = compile_preprocessor(pipeline.named_steps[PREPROCESS_STEP])
        self.estimator = pipeline.named_steps[MODEL_STEP]
        self.linear = compile_linear(self.estimator, self.preprocessor)
        self.trees = compile_trees(self.estimator, self.preprocessor)
        missing = set(self.preprocessor.numeric_features + self.preprocessor.categorical_features) - set(
            self.feature_names
        )
        if missing:
            raise UnsupportedPipelineError(f"the pipeline uses columns outside the contract: {sorted(missing)}")
        self._numeric_specs = tuple(self._by_name[n] for n in self.preprocessor.numeric_features)
        self._categorical_specs = tuple(self._by_name[n] for n in self.preprocessor.categorical_features)
        self._code_maps = tuple({v: i for i, v in enumerate(vocab)} for vocab in self.preprocessor.vocabularies)
        self._fill_array = np.asarray(self.preprocessor.fill_values, dtype=np.float64)
        if self.linear is not None:
            self._intercept = self.linear.intercept
            self._weight_array = np.asarray(self.linear.numeric_weights, dtype=np.float64)
            # A trailing 0.0 is what code -1 (missing or unknown category) indexes: it adds nothing, as in one-hot.
            self._category_weight_arrays = tuple(
                np.array([*(w[v] for v in vocab), 0.0])
                for w, vocab in zip(self.linear.category_weights, self.preprocessor.vocabularies, strict=True)
            )
        self._warm_up()

    def _warm_up(self) -> None:
        """Score one contract-valid record through the JSON and CSV paths at load, so parser and library start-up
        (about 20 ms for the CSV reader) is paid by the container's start, not by its first request."""
        record: dict[str, Any] = {}
        for spec in self.features:
            if spec.type == "categorical":
                record[spec.name] = spec.categories[0]
            elif spec.type == "boolean":
                record[spec.name] = False
            else:
                low = spec.minimum if spec.minimum is not None else 0.0
                record[spec.name] = int(low) if spec.type == "integer" else low
        self.score_records([record], batched=False)
        row = ",".join("false" if v is False else str(v) for v in record.values())
        self.score_csv(f"{row}\n")

    # Records (JSON) -------------------------------------------------------------------------------------------

    def _numeric_value(self, spec: FeatureSpec, value: Any, errors: dict[str, str]) -> float:
        if value is None:
            if not spec.nullable:
                errors[spec.name] = "is required (not nullable)"
            return math.nan
        if spec.type == "boolean":
            if isinstance(value, bool):
                return 1.0 if value else 0.0
            errors[spec.name] = f"expected true or false, got {value!r}"
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors[spec.name] = f"expected a number, got {value!r}"
            return math.nan
        number = float(value)
        if not math.isfinite(number):
            errors[spec.name] = f"expected a finite number, got {value!r}"
        elif spec.type == "integer" and not number.is_integer():
            errors[spec.name] = f"expected an integer, got {value!r}"
        elif spec.minimum is not None and number < spec.minimum:
            errors[spec.name] = f"{value!r} is below the minimum {spec.minimum:g}"
        elif spec.maximum is not None and number > spec.maximum:
            errors[spec.name] = f"{value!r} is above the maximum {spec.maximum:g}"
        return number

    def _category_code(self, spec: FeatureSpec, codes: dict[str, int], value: Any, errors: dict[str, str]) -> int:
        if value is None:
            if not spec.nullable:
                errors[spec.name] = "is required (not nullable)"
            return -1
        code = codes.get(value) if isinstance(value, str) else None
        if code is None:
            errors[spec.name] = f"{value!r} is not one of {', '.join(spec.categories)}"
            return -1
        return code

    def _parse_record(self, record: Any, position: int | None) -> tuple[list[float], list[int]]:
        where = "" if position is None else f"instances[{position}]: "
        if not isinstance(record, dict):
            raise InferencePayloadError(f"{where}expected an object of feature values, got {type(record).__name__}")
        errors: dict[str, str] = {}
        numeric = [self._numeric_value(s, record.get(s.name), errors) for s in self._numeric_specs]
        codes = [
            self._category_code(s, m, record.get(s.name), errors)
            for s, m in zip(self._categorical_specs, self._code_maps, strict=True)
        ]
        if len(record) > len(numeric) + len(codes) or errors:
            for key in record:
                if key not in self._by_name and key not in self._allowed_extra:
                    errors[str(key)] = "is not a feature of the model's contract"
        if errors:
            prefix = "" if position is None else f"instances[{position}]."
            fields = {f"{prefix}{k}": v for k, v in errors.items()}
            raise InferencePayloadError(f"{where}invalid feature values: {', '.join(sorted(errors))}", fields)
        return numeric, codes

    def _score_one_linear(self, numeric: list[float], codes: list[int], linear: CompiledLinear) -> float:
        pre = self.preprocessor
        z = linear.intercept
        for i, value in enumerate(numeric):
            z += linear.numeric_weights[i] * (pre.fill_values[i] if math.isnan(value) else value)
        offset = len(numeric)
        for code, vocabulary in zip(codes, pre.vocabularies, strict=True):
            if code >= 0:
                z += linear.coefficients[offset + code]
            offset += len(vocabulary)
        return _sigmoid(z)

    def _model_row(self, numeric: list[float], codes: list[int]) -> list[float]:
        """One record as the ColumnTransformer's output row, with the same float operations it performs."""
        pre = self.preprocessor
        row = [
            ((pre.fill_values[i] if math.isnan(value) else value) - pre.means[i]) / pre.scales[i]
            for i, value in enumerate(numeric)
        ]
        for code, vocabulary in zip(codes, pre.vocabularies, strict=True):
            one_hot = [0.0] * len(vocabulary)
            if code >= 0:
                one_hot[code] = 1.0
            row.extend(one_hot)
        return row

    def _score_one(self, numeric: list[float], codes: list[int]) -> float:
        if self.linear is not None:
            return self._score_one_linear(numeric, codes, self.linear)
        row = self._model_row(numeric, codes)
        if self.trees is not None:
            return float(expit(self.trees.raw_score(row)))
        return float(self.estimator.predict_proba(np.array([row], dtype=np.float64))[0, 1])

    def score_records(self, records: list[Any], *, batched: bool) -> FloatArray:
        """Validate records against the contract and return P(positive) per record."""
        parsed = [self._parse_record(r, i if batched else None) for i, r in enumerate(records)]
        if len(parsed) == 1:
            return np.array([self._score_one(parsed[0][0], parsed[0][1])])
        numeric = np.array([p[0] for p in parsed], dtype=np.float64).reshape(len(parsed), -1)
        codes = np.array([p[1] for p in parsed], dtype=np.int64).reshape(len(parsed), -1)
        return self.score_columns(numeric, [codes[:, j] for j in range(codes.shape[1])])

    # Columns (CSV and batches) ---------------------------------------------------------------------------------

    def score_columns(self, numeric: FloatArray, category_codes: list[npt.NDArray[np.int64]]) -> FloatArray:
        if self.linear is not None:
            return self._score_linear_columns(numeric, category_codes)
        matrix = self.preprocessor.transform_columns(numeric, category_codes)
        return np.asarray(self.estimator.predict_proba(matrix)[:, 1], dtype=np.float64)

    def _score_linear_columns(self, numeric: FloatArray, category_codes: list[npt.NDArray[np.int64]]) -> FloatArray:
        """The folded linear form on columns: no one-hot matrix is built, each category indexes its weight."""
        filled = np.where(np.isnan(numeric), self._fill_array, numeric)
        z = filled @ self._weight_array + self._intercept
        for codes, weights in zip(category_codes, self._category_weight_arrays, strict=True):
            z += weights[codes]
        return np.asarray(expit(z), dtype=np.float64)

    def score_csv(self, text: str) -> FloatArray:
        self._check_csv_width(text)
        columns = _parse_csv_pyarrow(text, self.features) if _pyarrow_csv is not None else None
        if columns is None:
            columns = self._parse_csv_pandas(text)
        errors: dict[str, str] = {}
        rows = len(next(iter(columns.values())).values) if columns else 0
        numeric = np.empty((rows, len(self._numeric_specs)), dtype=np.float64)
        for j, spec in enumerate(self._numeric_specs):
            numeric[:, j] = self._numeric_column(spec, columns[spec.name], errors)
        codes = [
            self._category_column(spec, code_map, columns[spec.name], errors)
            for spec, code_map in zip(self._categorical_specs, self._code_maps, strict=True)
        ]
        if errors:
            raise InferencePayloadError(f"invalid CSV columns: {', '.join(sorted(errors))}", errors)
        return self.score_columns(numeric, codes)

    def _check_csv_width(self, text: str) -> None:
        width = len(self.feature_names)
        line_end = text.find("\n")
        first_line = text if line_end < 0 else text[:line_end]
        found = len(next(csv.reader([first_line]), []))
        if found != width:
            raise InferencePayloadError(
                f"CSV rows need {width} values in contract order ({', '.join(self.feature_names)}), got {found}",
                {"csv": f"expected {width} columns, got {found}"},
            )

    def _parse_csv_pandas(self, text: str) -> dict[str, CsvColumn]:
        """pandas' C parser, when pyarrow is absent or refused the body; on failure, name the column and row."""
        # `category` columns are factorized while tokenizing, so text never becomes one Python string per row.
        dtypes = {s.name: (np.float64 if s.type in ("integer", "float") else "category") for s in self.features}
        options: dict[str, Any] = {
            "header": None,
            "names": list(self.feature_names),
            "keep_default_na": False,
            "na_values": [""],
            "skip_blank_lines": True,
        }
        try:
            frame = pd.read_csv(io.StringIO(text), dtype=dtypes, **options)
        except (ValueError, pd.errors.ParserError):
            frame = self._diagnose_csv(text, options)
        return {spec.name: CsvColumn.from_series(frame[spec.name]) for spec in self.features}

    def _diagnose_csv(self, text: str, options: dict[str, Any]) -> pd.DataFrame:
        try:
            raw = pd.read_csv(io.StringIO(text), dtype=str, **options)
        except (ValueError, pd.errors.ParserError) as exc:
            raise InferencePayloadError(f"unreadable CSV: {exc}", {"csv": str(exc).strip()}) from None
        errors: dict[str, str] = {}
        for spec in self.features:
            column = raw[spec.name]
            if spec.type not in ("integer", "float"):
                raw[spec.name] = column.astype("category")
                continue
            converted = pd.to_numeric(column, errors="coerce")
            bad = converted.isna() & column.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                errors[spec.name] = f"row {row}: expected a number, got {column.iloc[row]!r}"
            raw[spec.name] = converted.astype(np.float64)
        if errors:
            raise InferencePayloadError(f"invalid CSV columns: {', '.join(sorted(errors))}", errors)
        return raw

    @staticmethod
    def _first_row(mask: npt.NDArray[np.bool_]) -> int:
        return int(np.flatnonzero(mask)[0])

    def _numeric_column(self, spec: FeatureSpec, column: CsvColumn, errors: dict[str, str]) -> FloatArray:
        if spec.type == "boolean":
            texts = [v.strip().lower() for v in column.dictionary]
            truth = [1.0 if t in _TRUE_TEXT else 0.0 if t in _FALSE_TEXT else math.inf for t in texts]
            # The appended NaN is what code -1 (an empty field) indexes.
            values = np.array([*truth, math.nan])[column.codes()]
            bad = np.isinf(values)
            if bad.any():
                row = self._first_row(bad)
                errors[spec.name] = f"row {row}: expected true or false, got {column.text_at(row)!r}"
                values[bad] = math.nan
        else:
            values = np.asarray(column.values, dtype=np.float64)
        missing = np.isnan(values)
        if not spec.nullable and missing.any():
            errors.setdefault(spec.name, f"row {self._first_row(missing)}: is required")
        finite = values[~missing]
        if spec.type == "integer" and finite.size and not np.all(finite == np.floor(finite)):
            errors.setdefault(spec.name, "expected integers")
        if spec.minimum is not None and finite.size and finite.min() < spec.minimum:
            errors.setdefault(spec.name, f"a value is below the minimum {spec.minimum:g}")
        if spec.maximum is not None and finite.size and finite.max() > spec.maximum:
            errors.setdefault(spec.name, f"a value is above the maximum {spec.maximum:g}")
        return values

    def _category_column(
        self, spec: FeatureSpec, code_map: dict[str, int], column: CsvColumn, errors: dict[str, str]
    ) -> npt.NDArray[np.int64]:
        unknown_code = -2
        remap = np.array([*(code_map.get(v, unknown_code) for v in column.dictionary), -1], dtype=np.int64)
        codes = remap[column.codes()]
        unknown = codes == unknown_code
        if unknown.any():
            row = self._first_row(unknown)
            errors[spec.name] = f"row {row}: {column.text_at(row)!r} is not one of {', '.join(spec.categories)}"
            codes[unknown] = -1
        elif not spec.nullable and (codes < 0).any():
            errors[spec.name] = f"row {self._first_row(codes < 0)}: is required"
        return codes


@dataclass(frozen=True)
class CsvColumn:
    """One parsed CSV column: floats (NaN = empty) for numbers; for text, dictionary indices (-1 = empty) and the
    distinct strings, so validation and encoding touch each distinct value once, not each row."""

    values: npt.NDArray[Any]
    dictionary: tuple[str, ...] = ()

    @classmethod
    def from_series(cls, series: pd.Series) -> CsvColumn:
        if isinstance(series.dtype, pd.CategoricalDtype):
            codes = np.asarray(series.cat.codes.to_numpy(), dtype=np.int64)
            return cls(codes, tuple(str(v) for v in series.cat.categories))
        return cls(np.asarray(series.to_numpy(dtype=np.float64)))

    def codes(self) -> npt.NDArray[np.int64]:
        return np.asarray(self.values, dtype=np.int64)

    def text_at(self, row: int) -> str | None:
        code = int(self.values[row])
        return None if code < 0 else self.dictionary[code]


def _parse_csv_pyarrow(text: str, features: tuple[FeatureSpec, ...]) -> dict[str, CsvColumn] | None:
    """pyarrow's CSV reader, about 2.5x faster than pandas' here; None when it refuses the body, so the pandas
    path can name the offending column and row. One thread: the container runs a worker per core."""
    assert _pyarrow_csv is not None and _pyarrow is not None
    pa, pacsv = _pyarrow, _pyarrow_csv
    text_type = pa.dictionary(pa.int32(), pa.string())
    types = {s.name: (pa.float64() if s.type in ("integer", "float") else text_type) for s in features}
    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=[s.name for s in features], use_threads=False),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True),
        ).unify_dictionaries()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    columns: dict[str, CsvColumn] = {}
    for spec in features:
        chunked = table.column(spec.name)
        if spec.type in ("integer", "float"):
            columns[spec.name] = CsvColumn(np.asarray(chunked.to_numpy(), dtype=np.float64))
            continue
        chunks = chunked.chunks
        dictionary = tuple(str(v) for v in chunks[0].dictionary.to_pylist()) if chunks else ()
        indices = [np.asarray(c.indices.fill_null(-1).to_numpy(), dtype=np.int64) for c in chunks]
        columns[spec.name] = CsvColumn(np.concatenate(indices) if indices else np.empty(0, dtype=np.int64), dictionary)
    return columns


@dataclass(frozen=True)
class RecordsPayload:
    records: list[Any]
    batched: bool


@dataclass(frozen=True)
class CsvPayload:
    text: str


@dataclass(frozen=True)
class Prediction:
    probabilities: FloatArray
    threshold: float
    model_version: str


def render_predictions(probabilities: FloatArray, threshold: float) -> str:
    """The comma-separated prediction objects of the response body."""
    labels = probabilities >= threshold
    if len(probabilities) < _VECTOR_RENDER_ROWS:
        templates = [_PREDICTION_TEMPLATES[label] for label in labels.tolist()]
        return ",".join(templates) % tuple(probabilities.tolist())
    scaled = np.rint(np.clip(probabilities, 0.0, 1.0) * 10**_DECIMALS).astype(np.int64)
    rows = np.tile(np.frombuffer(_ROW_TEMPLATE, dtype=np.uint8), (len(scaled), 1))
    whole, fraction = np.divmod(scaled, 10**_DECIMALS)
    rows[:, _INTEGER_DIGIT] = 48 + whole
    # Twelve decimals as three four-digit blocks looked up in a table: two integer divisions per row, not twelve.
    first = _INTEGER_DIGIT + 2
    for block, place in enumerate((10**8, 10**4, 1)):
        quotient, fraction = np.divmod(fraction, place)
        rows[:, first + 4 * block : first + 4 * block + 4] = _FOUR_DIGITS[quotient]
    rows[:, _LABEL_DIGIT] = 48 + labels
    return rows.tobytes()[:-1].decode("ascii")


def _limit_native_threads() -> None:
    """One native thread per worker unless INFERENCE_THREADS says otherwise: the container already runs a worker
    per vCPU, and OpenMP pools on top of that oversubscribe the cores (gradient boosting slows down tenfold)."""
    threads = int(os.environ.get("INFERENCE_THREADS", "1"))
    if threads > 0:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)


def model_fn(model_dir: str) -> ServingModel:
    # The limit holds for the whole process: right for a serving worker, so it is set here, at the container's
    # entry point, not where a model object is built (a benchmark or a notebook builds them too).
    _limit_native_threads()
    root = Path(model_dir)
    metadata = json.loads((root / METADATA_FILE).read_text())
    pipeline = joblib.load(root / MODEL_FILE)
    version = os.environ.get("MODEL_VERSION") or str(metadata.get("model_version", "unversioned"))
    return ServingModel(pipeline, metadata, version)


def _media_type(content_type: str | None) -> str:
    return (content_type or JSON_CONTENT_TYPE).split(";", 1)[0].strip().lower()


def input_fn(request_body: str | bytes, request_content_type: str | None) -> RecordsPayload | CsvPayload:
    media = _media_type(request_content_type)
    if isinstance(request_body, bytes | bytearray):
        try:
            request_body = bytes(request_body).decode("utf-8")
        except UnicodeDecodeError:
            raise InferencePayloadError("the request body is not UTF-8 text", {"body": "not UTF-8"}) from None
    if media == CSV_CONTENT_TYPE:
        if not request_body.strip():
            raise InferencePayloadError("the CSV body is empty", {"csv": "no rows"})
        return CsvPayload(request_body)
    if media != JSON_CONTENT_TYPE:
        raise UnsupportedContentTypeError(
            f"content type {media!r} is not supported; send {JSON_CONTENT_TYPE} or {CSV_CONTENT_TYPE}",
            {"content_type": media},
        )
    try:
        document = json.loads(request_body)
    except ValueError as exc:
        raise InferencePayloadError(f"the body is not valid JSON: {exc}", {"body": "invalid JSON"}) from None
    if not isinstance(document, dict):
        raise InferencePayloadError(
            'expected a JSON object: one record or {"instances": [...]}', {"body": f"got {type(document).__name__}"}
        )
    if "instances" in document:
        instances = document["instances"]
        if not isinstance(instances, list) or not instances:
            raise InferencePayloadError(
                '"instances" must be a non-empty list of records', {"instances": "empty or not a list"}
            )
        return RecordsPayload(instances, batched=True)
    return RecordsPayload([document], batched=False)


def predict_fn(input_data: RecordsPayload | CsvPayload, model: ServingModel) -> Prediction:
    if isinstance(input_data, CsvPayload):
        probabilities = model.score_csv(input_data.text)
    else:
        probabilities = model.score_records(input_data.records, batched=input_data.batched)
    return Prediction(probabilities, model.threshold, model.model_version)


def output_fn(prediction: Prediction, accept: str | None) -> str:
    media = _media_type(accept)
    if media not in (JSON_CONTENT_TYPE, "*/*"):
        raise UnsupportedAcceptError(
            f"accept type {media!r} is not supported; ask for {JSON_CONTENT_TYPE}", {"accept": media}
        )
    body = render_predictions(prediction.probabilities, prediction.threshold)
    return (
        f'{{"predictions":[{body}],"model_version":{json.dumps(prediction.model_version)},'
        f'"threshold":{json.dumps(prediction.threshold)}}}'
    )
