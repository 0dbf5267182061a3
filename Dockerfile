# tf_sparse_gen: trains the default model (see README). Not built on the development
# machine (it has no Docker engine); written to mirror scripts/setup.sh exactly.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends dataset-fashion-mnist g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN python -m tf_sparse_gen.kernels build

ENV TF_CPP_MIN_LOG_LEVEL=2
# Mount a volume at /app/runs to keep checkpoints; extra arguments go to train.py.
ENTRYPOINT ["python", "train.py"]
