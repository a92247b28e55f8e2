"""One endpoint variant's model server, run by the image's own Python: the scikit-learn container's serving stack.

Started as `<image python> sklearn_serving.py` with SAGEMAKER_BASE_DIR standing for /opt/ml; it imports the
serving stack, then reads the Model's Environment (SAGEMAKER_PROGRAM, SAGEMAKER_SUBMIT_DIRECTORY, ...) as one
JSON line on stdin, by which time the model is extracted under model/.
It imports nothing from the project: only what the image has (sagemaker-containers, numpy, flask).

As sagemaker_sklearn_container.serving does (aws/sagemaker-scikit-learn-container, src/sagemaker_sklearn_container/
serving.py), the user module is imported from the code directory, model_fn / input_fn / predict_fn / output_fn
(or transform_fn) wrap into sagemaker-containers' Transformer with the container's defaults for the missing
ones, and the Transformer serves /ping and /invocations through sagemaker-containers' Flask Worker. So the
answers are the container's: an UnsupportedFormatError from input_fn is 415 and from output_fn 406 (JSON body),
any other exception from the user's functions is Flask's 500 Internal Server Error.

Locally the Worker runs under werkzeug's WSGI server on 127.0.0.1 (the image runs it under gunicorn behind
nginx on port 8080); the bound port is printed as the first line of stdout once the model is loaded.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from typing import Any

import numpy as np
from sagemaker_containers.beta.framework import content_types, encoders, env, files, transformer, worker
from werkzeug.serving import make_server


def default_input_fn(input_data: Any, content_type: str) -> Any:
    array = encoders.decode(input_data, content_type)
    return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array


def default_predict_fn(input_data: Any, model: Any) -> Any:
    return model.predict(input_data)


def default_output_fn(prediction: Any, accept: str) -> Any:
    return worker.Response(encoders.encode(prediction, accept), mimetype=accept)


def user_transformer(module: Any) -> Any:
    model_fn = getattr(module, "model_fn", transformer.default_model_fn)
    functions = {name: getattr(module, name, None) for name in ("input_fn", "predict_fn", "output_fn")}
    transform_fn = getattr(module, "transform_fn", None)
    if transform_fn is not None and any(functions.values()):
        raise ValueError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
    if transform_fn is not None:
        return transformer.Transformer(model_fn=model_fn, transform_fn=transform_fn)
    return transformer.Transformer(
        model_fn=model_fn,
        input_fn=functions["input_fn"] or default_input_fn,
        predict_fn=functions["predict_fn"] or default_predict_fn,
        output_fn=functions["output_fn"] or default_output_fn,
    )


def _exit_with_parent() -> None:
    """The local cloud holds this process's stdin: end of file means it has gone, and so does this server."""
    sys.stdin.read()
    os._exit(0)


def main() -> None:
    # Started ahead of its model: the Model's variables arrive as one JSON line, before any user code runs.
    line = sys.stdin.readline()
    if not line:
        return
    os.environ.update(json.loads(line))
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    serving = env.ServingEnv()
    code_dir = os.path.join(os.environ["SAGEMAKER_BASE_DIR"], "code")
    files.download_and_extract(serving.module_dir, code_dir)
    # gunicorn starts the worker with the code directory on its --pythonpath.
    sys.path.insert(0, code_dir)
    module = importlib.import_module(serving.module_name)
    model = user_transformer(module)
    model.initialize()
    app = worker.Worker(transform_fn=model.transform, module_name=serving.module_name)
    server = make_server("127.0.0.1", 0, app)
    print(json.dumps({"port": server.server_port}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
