"""`ops doctor`: recognise known gpt-oss failures and point to the runbook that fixes them.

Two sources of evidence: environment checks (`checks.py`: encodings, versions, attention backend, memory, disk,
Ray ports, API key, vLLM engines a dead Ray left behind; `compat.py`: whether the installed Ray, vLLM, torch,
torchvision and Triton fit together, which `ops deploy --target local` also runs before starting anything) and
log signatures (`signatures.py`, applied by `scan.py` to files, the local Ray session logs or every cluster
node's logs). Both produce `Finding`s (`report.py`), each naming a check id whose runbook
lives under docs/runbooks/ (`registry.py`).
"""
