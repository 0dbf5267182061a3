"""Throughput of every model family on this machine, side by side in one run.

Measures, on real Fashion-MNIST at 32x32x1, batch 64, `small` presets:

1. training images/s of `andor` (sparsity on/off, also without the critic;
   the sparse model both with the compiled top-k kernel and with tf.math.top_k),
   `spgan` (sparse_output on/off; reconstructor on, the preset's n_critic)
   and `selfexgan`, timed as `tf.function(model.train_step)` on prefetched
   batches after warm-up steps;
2. the same for a yardstick written here: a plain Keras 3 WGAN-GP (one critic
   + one generator update per step, gradient penalty 10) whose generator is
   the `small` AND-OR generator without top-k and whose critic has the layout
   of the AND-OR critic; every family is reported as a ratio to it;
3. Langevin inference (`infer_latent(images, steps=30)`, batch 64) of the
   AND-OR model, sparse (kernel and tf.math.top_k) vs dense;
4. evaluation: feature extraction with the project's Fashion-MNIST classifier
   and `model.generate` of each family (eager, as evaluate.py calls it, and in
   a tf.function), batches of 250;
5. peak resident memory of each family's training, each in a fresh
   subprocess of this script (ru_maxrss, TensorFlow runtime included);
6. the share of the machine's float32 matmul FLOP/s that the AND-OR
   generator's forward pass achieves at batch 64.

Every timed phase alternates between its variants in rounds (round 1: each
variant once, round 2: again, ...) and reports medians, so the variants share
the machine load; ratios are always taken within this run. The CPU time used
by other processes during each phase is recorded from /proc/stat.

Writes `<out>/results.json` and `<out>/results.md`.

  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/throughput.py            # ~10 min on 2 cores
  TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/throughput.py --quick --out=/tmp/throughput
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

from absl import app, flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import ANDOR_SMALL_UNTIL_2026_12_07  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Smoke run: 1 round of 2 steps, small evaluation sets.")
flags.DEFINE_integer("rounds", 3, "Alternating timing rounds per phase.")
flags.DEFINE_integer("timed_steps", 5, "Timed training steps per variant and round.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed training steps after tracing.")
flags.DEFINE_integer("max_examples", 2000, "Fashion-MNIST training examples loaded.")
flags.DEFINE_integer("langevin_steps", 30, "Langevin steps of inference.")
flags.DEFINE_integer("langevin_batches", 2, "Inference batches of 64 per variant and round.")
flags.DEFINE_integer("eval_batch", 250, "Batch size of feature extraction and generation.")
flags.DEFINE_integer("eval_images", 2000, "Images per feature-extraction round.")
flags.DEFINE_integer("gen_batches", 4, "Generation batches per family and round.")
flags.DEFINE_integer("matmul_size", 1024, "Side of the square float32 matmul that measures the peak.")
flags.DEFINE_integer("matmul_chain", 8, "Dependent matmuls per timed call.")
flags.DEFINE_integer("forward_reps", 10, "Generator forward passes (batch 64) per variant and round.")
flags.DEFINE_bool("andor_noebm", True, "Also time andor with andor.ebm=False (sparse and dense).")
flags.DEFINE_bool("memory", True, "Measure peak memory per family in subprocesses.")
flags.DEFINE_string("out", os.path.join(ROOT, "benchmarks", "results", "throughput"), "Output directory.")
flags.DEFINE_string("memory_child", None, "Internal: run one variant's training and print its ru_maxrss.",
                    module_name="throughput_internal")

BATCH = 64
IMAGE_SHAPE = (32, 32, 1)
YARDSTICK = "wgan_gp"
# name -> (family, config overrides); the yardstick is built by `build_yardstick`.
# The AND-OR variants keep the `small` recipe this benchmark was first measured with (10 Langevin
# steps per training step), so that its results stay comparable across revisions.
_ANDOR = ANDOR_SMALL_UNTIL_2026_12_07
VARIANTS = {
    "andor_sparse": ("andor", {**_ANDOR, "andor.sparsity": True}),
    # The same model selecting with tf.math.top_k instead of the compiled kernel.
    "andor_sparse_tf_top_k": ("andor", {**_ANDOR, "andor.sparsity": True, "andor.topk_implementation": "tf"}),
    "andor_dense": ("andor", {**_ANDOR, "andor.sparsity": False}),
    "andor_sparse_noebm": ("andor", {**_ANDOR, "andor.sparsity": True, "andor.ebm": False}),
    "andor_dense_noebm": ("andor", {**_ANDOR, "andor.sparsity": False, "andor.ebm": False}),
    "spgan_sparse": ("spgan", {"spgan.sparse_output": True, "spgan.reconstructor": True}),
    "spgan_dense": ("spgan", {"spgan.sparse_output": False, "spgan.reconstructor": True}),
    "selfexgan": ("selfexgan", {}),
}
# (ratio name, sparse variant, dense variant) of time ratios sparse / dense.
PAIRS = [("topk_overhead_train_step", "andor_sparse", "andor_dense"),
         ("topk_overhead_train_step_tf_top_k", "andor_sparse_tf_top_k", "andor_dense"),
         ("topk_overhead_train_step_noebm", "andor_sparse_noebm", "andor_dense_noebm"),
         ("spgan_sparse_over_dense_step_time", "spgan_sparse", "spgan_dense")]
TOPK_TARGET = 1.15
TF_IMPORT_MB = 750


def variant_names():
    names = [n for n in VARIANTS if FLAGS.andor_noebm or not n.endswith("_noebm")]
    return names + [YARDSTICK]


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def vmhwm_mb() -> float:
    """Peak resident set of this process's own address space (/proc/self/status VmHWM), MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def code_state() -> dict:
    """The project code this run measured: git HEAD, uncommitted files, a hash of tf_sparse_gen/**/*.py."""
    def git(*args):
        proc = subprocess.run(["git", "--no-optional-locks", *args], capture_output=True, text=True, cwd=ROOT)
        return proc.stdout.rstrip() if proc.returncode == 0 else None

    digest = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(ROOT, "tf_sparse_gen", "**", "*.py"), recursive=True)):
        with open(path, "rb") as f:
            digest.update(path.encode() + b"\0" + f.read())
    status = git("status", "--porcelain")
    return {"git_head": git("rev-parse", "HEAD"), "uncommitted": status.splitlines() if status else [],
            "tf_sparse_gen_sha256": digest.hexdigest()}


class CpuMonitor:
    """CPU seconds spent by other processes between `start` and `stop` (busy time in /proc/stat
    minus this process's and its waited-for children's CPU time)."""

    @staticmethod
    def _busy_seconds():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal (guest time is already in user)
        busy = sum(fields[:3]) + sum(fields[5:8])
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_seconds():
        return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                      resource.getrusage(resource.RUSAGE_CHILDREN)))

    def start(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy_seconds(), self._own_seconds()
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        busy = self._busy_seconds() - self.busy0
        own = self._own_seconds() - self.own0
        return {"wall_s": wall, "own_cpu_cores": own / wall, "other_processes_cpu_cores": max(0.0, busy - own) / wall,
                "loadavg_1min_end": os.getloadavg()[0]}


def time_ratios(res, pairs):
    """{ratio name: median time of the sparse variant / of the dense one} for the pairs timed in `res`."""
    return {key: res[s]["median_s"] / res[d]["median_s"] for key, s, d in pairs if s in res and d in res}


def summarize(seconds, images_per_unit):
    """Median / min / max of per-unit times and the images/s at the median."""
    med = statistics.median(seconds)
    return {"median_s": med, "min_s": min(seconds), "max_s": max(seconds), "n": len(seconds),
            "images_per_unit": images_per_unit, "images_per_sec": images_per_unit / med}


def alternate(tasks, rounds, units, images_per_unit):
    """Times `units` calls of every task per round, variants interleaved round by round.

    `tasks`: {name: fn(i)} where fn runs one unit and returns only when its result exists.
    Returns {name: summary of the per-unit times}.
    """
    times = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, fn in tasks.items():
            for i in range(units):
                t0 = time.perf_counter()
                fn(i)
                times[name].append(time.perf_counter() - t0)
    per_unit = images_per_unit if isinstance(images_per_unit, dict) else {n: images_per_unit for n in tasks}
    return {name: summarize(t, per_unit[name]) for name, t in times.items()}


# ----------------------------------------------------------------------------- models

def build_yardstick(andor_cfg):
    """A plain WGAN-GP with the AND-OR `small` generator minus top-k and an AND-OR-like critic."""
    import keras
    import tensorflow as tf

    a = andor_cfg

    class WganGp(keras.Model):
        def __init__(self, gp_weight=10.0):
            super().__init__(name=YARDSTICK)
            self.z_dim, self.gp_weight = a.z_dim, gp_weight
            g = [keras.Input((a.z_dim,)), keras.layers.Dense(a.base_size ** 2 * a.fc_channels, activation="relu"),
                 keras.layers.Reshape((a.base_size, a.base_size, a.fc_channels))]
            for width in a.block_widths:
                g.append(keras.layers.UpSampling2D(2, interpolation="nearest"))
                g += [keras.layers.Conv2D(width, 3, padding="same", activation="relu")
                      for _ in range(a.convs_per_block)]
            g.append(keras.layers.Conv2D(IMAGE_SHAPE[-1], 3, padding="same", activation="tanh"))
            self.generator = keras.Sequential(g, name="generator")
            c = [keras.Input(IMAGE_SHAPE), keras.layers.Conv2D(a.critic_stem, 3, padding="same"),
                 keras.layers.LeakyReLU(0.2)]
            for width in a.critic_widths:
                c.append(keras.layers.AveragePooling2D(2))
                for _ in range(2):
                    c += [keras.layers.Conv2D(width, 3, padding="same"), keras.layers.LeakyReLU(0.2)]
            c += [keras.layers.Flatten(), keras.layers.Dense(1)]
            self.critic = keras.Sequential(c, name="critic")
            self.seed_generator = keras.random.SeedGenerator(0)

        @property
        def latent_dim(self):
            return self.z_dim

        def compile(self, **kwargs):
            super().compile(**kwargs)
            self.g_opt = keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9)
            self.c_opt = keras.optimizers.Adam(2e-4, beta_1=0.5, beta_2=0.9)
            self.g_opt.build(self.generator.trainable_variables)
            self.c_opt.build(self.critic.trainable_variables)

        def generate(self, z):
            return self.generator(z, training=False)

        def train_step(self, data):
            real = tf.cast(data[1], tf.float32)
            batch = tf.shape(real)[0]
            fakes = self.generator(keras.random.normal([batch, self.z_dim], seed=self.seed_generator), training=True)
            eps = keras.random.uniform([batch, 1, 1, 1], seed=self.seed_generator)
            critic_vars = self.critic.trainable_variables
            with tf.GradientTape() as tape:
                with tf.GradientTape() as inner:
                    mixed = eps * real + (1.0 - eps) * fakes
                    inner.watch(mixed)
                    mixed_scores = self.critic(mixed, training=True)
                slopes = tf.sqrt(tf.reduce_sum(tf.square(inner.gradient(mixed_scores, mixed)), axis=[1, 2, 3]) + 1e-10)
                gp = tf.reduce_mean(tf.square(slopes - 1.0))
                w = tf.reduce_mean(self.critic(fakes, training=True)) - tf.reduce_mean(self.critic(real, training=True))
                c_loss = w + self.gp_weight * gp
            self.c_opt.apply(tape.gradient(c_loss, critic_vars), critic_vars)
            gen_vars = self.generator.trainable_variables
            with tf.GradientTape() as tape:
                z = keras.random.normal([batch, self.z_dim], seed=self.seed_generator)
                g_loss = -tf.reduce_mean(self.critic(self.generator(z, training=True), training=True))
            self.g_opt.apply(tape.gradient(g_loss, gen_vars), gen_vars)
            return {"c_loss": c_loss, "g_loss": g_loss}

    model = WganGp()
    model.generator(tf.zeros([1, a.z_dim]))
    model.critic(tf.zeros([1, *IMAGE_SHAPE]))
    return model


def build_variant(name, num_examples):
    """The compiled model of variant `name` and its resolved config (None for the yardstick)."""
    from tf_sparse_gen.config import get_config
    from tf_sparse_gen.families import build_model

    if name == YARDSTICK:
        model = build_yardstick(get_config("andor", "small", _ANDOR).andor)
        model.compile()
        return model, None
    family, overrides = VARIANTS[name]
    config = get_config(family, "small", overrides)
    model = build_model(config, num_examples, IMAGE_SHAPE)
    model.compile()
    return model, config


def load_batches(count):
    from tf_sparse_gen.data import load_dataset

    source = load_dataset("fashion_mnist", "train", 32, 1, max_examples=FLAGS.max_examples)
    return source, list(source.train_dataset(BATCH, seed=0).take(count))


def train_fn(model, batches):
    """fn(i): one synchronous training step on batch i (mod the number of batches)."""
    import tensorflow as tf

    step = tf.function(model.train_step)

    def run(i):
        logs = step(batches[i % len(batches)])
        float(next(iter(logs.values())))
    return run


def num_params(net) -> int:
    return int(sum(v.shape.num_elements() for v in net.trainable_variables))


# ----------------------------------------------------------------------------- FLOPs

def andor_generator_flops(generator, batch) -> dict:
    """2 * MACs of every Dense / Conv2D of the AND-OR generator (bias adds, ReLU, top-k not counted)."""
    layers = list(generator.stage_layers) + [generator.out_conv]
    sizes = list(generator.stage_size) + [generator.image_size]
    per_layer = {}
    for layer, size in zip(layers, sizes):
        kernel = layer.kernel.shape
        if len(kernel) == 2:
            macs = kernel[0] * kernel[1]
        else:
            macs = size * size * kernel[0] * kernel[1] * kernel[2] * kernel[3]
        per_layer[layer.name] = 2 * macs * batch
    return {"total": sum(per_layer.values()), "per_layer": per_layer}


def yardstick_generator_flops(generator, batch) -> int:
    """The same count from the yardstick generator's Keras layers (a check of equal size)."""
    import keras

    total = 0
    for layer in generator.layers:
        if isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1] * batch
        elif isinstance(layer, keras.layers.Conv2D):
            h, w = layer.output.shape[1:3]
            total += 2 * h * w * math.prod(layer.kernel.shape) * batch
    return total


# ----------------------------------------------------------------------------- memory

def memory_child(name):
    """Runs in a fresh process: data, model, tracing, warm-up and timed steps; prints ru_maxrss (MB)."""
    import tensorflow as tf  # noqa: F401  (the runtime is part of the measurement)

    after_import = maxrss_mb()
    _, batches = load_batches(4)
    after_data = maxrss_mb()
    out = {"variant": name, "maxrss_after_import_mb": after_import, "maxrss_after_data_mb": after_data}
    if name != "tf_runtime":
        model, _ = build_variant(name, FLAGS.max_examples)
        out["maxrss_after_build_mb"] = maxrss_mb()
        fn = train_fn(model, batches)
        for i in range(1 + FLAGS.warmup_steps + FLAGS.timed_steps):
            fn(i)
        out["steps"] = 1 + FLAGS.warmup_steps + FLAGS.timed_steps
    out["maxrss_peak_mb"] = maxrss_mb()
    out["vmhwm_peak_mb"] = vmhwm_mb()
    print(json.dumps(out))


def measure_memory(names):
    results = {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for name in ["tf_runtime"] + names:
        cmd = [sys.executable, os.path.abspath(__file__), f"--memory_child={name}",
               f"--max_examples={FLAGS.max_examples}", f"--warmup_steps={FLAGS.warmup_steps}",
               f"--timed_steps={FLAGS.timed_steps}"]
        errors = []
        for _ in range(2):
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if proc.returncode == 0:
                break
            errors.append(f"exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
            print(f"memory {name}: child failed ({errors[-1].splitlines()[-1]}), retrying once", flush=True)
        if proc.returncode != 0:
            results[name] = {"errors": errors}
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        results[name]["wall_s"] = time.perf_counter() - t0
        if errors:
            results[name]["failed_attempts"] = errors
        print(f"memory {name}: ru_maxrss {results[name]['maxrss_peak_mb']:.0f} MB, "
              f"VmHWM {results[name]['vmhwm_peak_mb']:.0f} MB", flush=True)
    floor = results.get("tf_runtime", {}).get("maxrss_peak_mb")
    for name in names:
        if floor is not None and "maxrss_peak_mb" in results[name]:
            results[name]["peak_above_tf_runtime_and_data_mb"] = results[name]["maxrss_peak_mb"] - floor
    return results


# ----------------------------------------------------------------------------- phases

def phase_training(models, batches):
    tasks = {}
    trace_s = {}
    for name, model in models.items():
        fn = train_fn(model, batches)
        t0 = time.perf_counter()
        fn(0)
        trace_s[name] = time.perf_counter() - t0
        for i in range(FLAGS.warmup_steps):
            fn(i + 1)
        tasks[name] = fn
        print(f"traced {name} in {trace_s[name]:.1f} s", flush=True)
    mon = CpuMonitor().start()
    res = alternate(tasks, FLAGS.rounds, FLAGS.timed_steps, BATCH)
    load = mon.stop()
    base = res[YARDSTICK]["images_per_sec"]
    for name, r in res.items():
        r["first_call_trace_s"] = trace_s[name]
        r["ratio_to_wgan_gp_images_per_sec"] = r["images_per_sec"] / base
    return res, time_ratios(res, PAIRS), load


LANGEVIN_VARIANTS = ("andor_sparse", "andor_sparse_tf_top_k", "andor_dense")
LANGEVIN_PAIRS = [("topk_overhead_langevin", "andor_sparse", "andor_dense"),
                  ("topk_overhead_langevin_tf_top_k", "andor_sparse_tf_top_k", "andor_dense")]


def phase_langevin(models, batches):
    tasks = {}
    for name in LANGEVIN_VARIANTS:
        model = models[name]

        def run(i, model=model):
            model.infer_latent(batches[i % len(batches)][1], steps=FLAGS.langevin_steps).numpy()
        run(0)
        tasks[name] = run
    mon = CpuMonitor().start()
    res = alternate(tasks, FLAGS.rounds, FLAGS.langevin_batches, BATCH)
    return res, time_ratios(res, LANGEVIN_PAIRS), mon.stop()


def phase_evaluation(models, source):
    import tensorflow as tf

    from tf_sparse_gen.metrics.feature_nets import load_feature_net

    net = load_feature_net("fmnist")
    images = source.take_images(FLAGS.eval_images)
    n = len(images)
    tasks = {"fmnist_features": lambda i: net.features_and_probs(images, batch_size=FLAGS.eval_batch)}
    per_unit = {"fmnist_features": n}
    tasks["fmnist_features"](0)
    families = {n_: m for n_, m in models.items() if not n_.endswith("_noebm")}
    for name, model in families.items():
        zs = [tf.random.stateless_normal([FLAGS.eval_batch, model.latent_dim], seed=[s, 0])
              for s in range(FLAGS.gen_batches)]
        graph_gen = tf.function(model.generate)

        def eager(i, model=model, zs=zs):
            for z in zs:
                model.generate(z).numpy()

        def graph(i, fn=graph_gen, zs=zs):
            for z in zs:
                fn(z).numpy()
        eager(0)
        graph(0)
        tasks[f"generate_eager/{name}"] = eager
        tasks[f"generate_tf_function/{name}"] = graph
        per_unit[f"generate_eager/{name}"] = per_unit[f"generate_tf_function/{name}"] = FLAGS.eval_batch * len(zs)
    mon = CpuMonitor().start()
    res = alternate(tasks, FLAGS.rounds, 1, per_unit)
    res["fmnist_features"]["batch_size"] = FLAGS.eval_batch
    return res, mon.stop()


FORWARD_VARIANTS = ("andor_sparse", "andor_sparse_tf_top_k", "andor_dense", YARDSTICK)


def phase_flops(models):
    """Peak float32 matmul FLOP/s vs the AND-OR generator forward pass at batch 64."""
    import tensorflow as tf

    n, chain = FLAGS.matmul_size, FLAGS.matmul_chain
    a = tf.random.normal([n, n], seed=1) / n ** 0.5
    x0 = tf.random.normal([n, n], seed=2)

    @tf.function
    def matmuls(x):
        for _ in range(chain):
            x = tf.linalg.matmul(a, x)
        return x

    tasks = {"matmul": lambda i: matmuls(x0).numpy()}
    per_unit = {"matmul": 0}
    z = tf.random.normal([BATCH, models["andor_sparse"].latent_dim], seed=3)
    for name in FORWARD_VARIANTS:
        fwd = tf.function(models[name].generate)

        def run(i, fwd=fwd):
            for _ in range(FLAGS.forward_reps):
                fwd(z).numpy()
        tasks[f"forward/{name}"] = run
        per_unit[f"forward/{name}"] = BATCH * FLAGS.forward_reps
    for fn in tasks.values():
        fn(0)
    mon = CpuMonitor().start()
    res = alternate(tasks, max(FLAGS.rounds, 3), 3, per_unit)
    load = mon.stop()
    matmul_flops = 2 * n ** 3 * chain
    peak = matmul_flops / res["matmul"]["min_s"]
    gen_flops = andor_generator_flops(models["andor_sparse"].generator, BATCH)
    out = {"matmul": {"size": n, "chain": chain, "flops_per_call": matmul_flops, "best_s": res["matmul"]["min_s"],
                      "median_s": res["matmul"]["median_s"], "peak_flops_per_sec": peak,
                      "median_flops_per_sec": matmul_flops / res["matmul"]["median_s"]},
           "andor_generator_flops_batch64": gen_flops,
           "yardstick_generator_flops_batch64": yardstick_generator_flops(models[YARDSTICK].generator, BATCH),
           "forward": {}}
    for name in FORWARD_VARIANTS:
        r = res[f"forward/{name}"]
        t_med, t_best = r["median_s"] / FLAGS.forward_reps, r["min_s"] / FLAGS.forward_reps
        out["forward"][name] = {"median_s": t_med, "best_s": t_best, "images_per_sec": BATCH / t_med,
                                "achieved_flops_per_sec": gen_flops["total"] / t_med,
                                "fraction_of_matmul_peak": gen_flops["total"] / t_med / peak,
                                "fraction_of_matmul_peak_best": gen_flops["total"] / t_best / peak}
    return out, load


# ----------------------------------------------------------------------------- report

def write_markdown(r, path):
    t = r["training"]
    mem = r.get("memory", {})
    lines = [f"# Throughput, {r['started']} ({r['machine']['cpu_count']} CPUs, TF {r['machine']['tf_version']})", "",
             f"Batch 64, 32x32x1 Fashion-MNIST, `small` presets. {r['settings']['rounds']} alternating rounds x "
             f"{r['settings']['timed_steps']} timed steps per variant, medians; ratios are within this run.", "",
             "## Training", "",
             "| variant | median step ms | img/s | x WGAN-GP img/s | peak RSS MB | of which above TF + data MB |",
             "|---|---|---|---|---|---|"]

    def mb(name, key):
        value = mem.get(name, {}).get(key)
        return "" if value is None else f"{value:.0f}"
    for name, v in t["variants"].items():
        lines.append(f"| {name} | {1000 * v['median_s']:.0f} | {v['images_per_sec']:.1f} | "
                     f"{v['ratio_to_wgan_gp_images_per_sec']:.3f} | {mb(name, 'maxrss_peak_mb')} | "
                     f"{mb(name, 'peak_above_tf_runtime_and_data_mb')} |")
    if "tf_runtime" in mem:
        lines.append(f"| (import tensorflow + load data only) | | | | {mb('tf_runtime', 'maxrss_peak_mb')} | |")
    if mem:
        lines += ["", "Peak RSS: ru_maxrss of a fresh subprocess per variant (training: build, trace, "
                  f"{1 + r['settings']['warmup_steps'] + r['settings']['timed_steps']} steps); it includes the "
                  "TensorFlow runtime (~750 MB for `import tensorflow`)."]
    lines += ["", "## Sparse / dense time ratios (target for top-k: <= 1.15)", "",
              "`andor_sparse` selects with the compiled TopKMask kernel (tf_sparse_gen/kernels), "
              "`andor_sparse_tf_top_k` with `tf.math.top_k`; both against the same `andor_dense`.", "",
              "| ratio | value | meets 1.15 |", "|---|---|---|"]
    for key, value in r["ratios"].items():
        meets = r["targets"].get(key)
        lines.append(f"| {key} | {value:.3f} | {'' if meets is None else ('yes' if meets else 'NO')} |")
    lv = r["langevin"]["variants"]
    lines += ["", f"## Langevin inference ({r['settings']['langevin_steps']} steps, batch 64)", "",
              "| variant | median s per batch | img/s |", "|---|---|---|"]
    lines += [f"| {n} | {v['median_s']:.3f} | {v['images_per_sec']:.1f} |" for n, v in lv.items()]
    ev = r["evaluation"]["variants"]
    lines += ["", f"## Evaluation (batches of {r['settings']['eval_batch']})", "", "| what | img/s |", "|---|---|"]
    lines += [f"| {n} | {v['images_per_sec']:.0f} |" for n, v in ev.items()]
    f = r["flops"]
    lines += ["", "## AND-OR generator forward pass vs matmul peak (batch 64)", "",
              f"float32 matmul {f['matmul']['size']}x{f['matmul']['size']}: best "
              f"{f['matmul']['peak_flops_per_sec'] / 1e9:.1f} GFLOP/s (median "
              f"{f['matmul']['median_flops_per_sec'] / 1e9:.1f}). Generator forward: "
              f"{f['andor_generator_flops_batch64']['total'] / 1e9:.3f} GFLOP per batch of 64 "
              "(2 x MACs of Dense/Conv2D).", "",
              "| generator | median ms | achieved GFLOP/s | fraction of peak |", "|---|---|---|---|"]
    lines += [f"| {n} | {1000 * v['median_s']:.2f} | {v['achieved_flops_per_sec'] / 1e9:.1f} | "
              f"{v['fraction_of_matmul_peak']:.3f} |" for n, v in f["forward"].items()]
    other = r["cpu_load_by_phase"].get("flops", {}).get("other_processes_cpu_cores", 0.0)
    if other > 0.25:
        lines += ["", f"Other processes used {other:.2f} cores during this phase, so the matmul peak was measured "
                  "under contention: it understates the idle machine's peak, and the fractions are overstated."]
    lines += ["", "## Machine load", ""]
    lines.append(f"loadavg (1, 5, 15 min) at start {tuple(round(x, 2) for x in r['loadavg_start'])}, at end "
                 f"{tuple(round(x, 2) for x in r['loadavg_end'])} (the end value includes this benchmark's own "
                 "threads). CPU cores used by other processes during each timed phase: " +
                 ", ".join(f"{k} {v['other_processes_cpu_cores']:.2f}" for k, v in r["cpu_load_by_phase"].items()) + ".")
    if r["load_note"]:
        lines += ["", r["load_note"]]
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return "\n".join(lines)


def main(argv):
    del argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if FLAGS.quick:
        FLAGS.rounds, FLAGS.timed_steps, FLAGS.warmup_steps = 1, 2, 1
        FLAGS.langevin_batches, FLAGS.eval_images, FLAGS.gen_batches, FLAGS.forward_reps = 1, 500, 1, 3
    if FLAGS.memory_child:
        memory_child(FLAGS.memory_child)
        return
    loadavg_start = os.getloadavg()
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    wall0 = time.perf_counter()
    code_start = code_state()
    names = variant_names()
    phases = {}
    memory = None
    if FLAGS.memory:
        print("memory (subprocesses, before this process imports TensorFlow) ...", flush=True)
        mon = CpuMonitor().start()
        parent_maxrss = maxrss_mb()
        memory = measure_memory(names)
        phases["memory"] = mon.stop()

    import keras
    import tensorflow as tf

    from tf_sparse_gen import kernels

    if not kernels.available():
        sys.exit(f"throughput: {kernels.unavailable_reason()}; andor_sparse would silently time tf.math.top_k")
    keras.utils.set_random_seed(0)
    source, batches = load_batches(4)
    models, configs = {}, {}
    for name in names:
        models[name], configs[name] = build_variant(name, source.num_examples)
    results = {
        "started": started,
        "machine": {"tf_version": tf.__version__, "keras_version": keras.__version__, "cpu_count": os.cpu_count(),
                    "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
                    "python": sys.version.split()[0], "topk_kernel": kernels.library_path()},
        "settings": {k: FLAGS[k].value for k in ("quick", "rounds", "timed_steps", "warmup_steps", "max_examples",
                                                  "langevin_steps", "langevin_batches", "eval_batch", "eval_images",
                                                  "gen_batches", "matmul_size", "matmul_chain", "forward_reps",
                                                  "andor_noebm", "memory", "out")},
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
        "batch_size": BATCH, "image_shape": list(IMAGE_SHAPE), "dataset": "fashion_mnist (train, first max_examples)",
        "loadavg_start": list(loadavg_start),
        "configs": {n: {"family": VARIANTS[n][0], "overrides": VARIANTS[n][1],
                        "family_config": c.to_dict()[c.model]} for n, c in configs.items() if c is not None},
        "params": {n: {k: num_params(getattr(m, k)) for k in ("generator", "critic", "encoder", "d1", "d2")
                       if getattr(m, k, None) is not None} for n, m in models.items()},
        "notes": {
            "images_per_sec": "64 real images / median time of one train_step (spgan: one step is n_critic critic "
                              "updates + 1 generator update + n_reconst encoder and reconstruction updates; andor: "
                              "critic update, andor.langevin_steps Langevin steps, generator update).",
            "yardstick": "wgan_gp: this script's Keras 3 WGAN-GP, generator = andor small generator without top-k "
                         "(Dense 64->4x4x128, ReLU, per block nearest x2 upsample + 2x(3x3 conv + ReLU) at "
                         "64/32/16, 3x3 conv + tanh), critic = the andor small critic's layout (3x3 conv 16, per "
                         "width 32/64/128 avg-pool + 2x(3x3 conv + LReLU), FC 1); one critic update with gradient "
                         "penalty 10 + one generator update per step, Adam(2e-4, 0.5, 0.9).",
            "timing": "tf.function(model.train_step) on 4 prefetched batches, first call (tracing) and "
                      "warmup_steps excluded; each step is synchronised by reading one returned value.",
        },
    }
    print("training ...", flush=True)
    results["training"] = {}
    results["training"]["variants"], results["ratios"], phases["training"] = phase_training(models, batches)
    print("langevin ...", flush=True)
    lv, langevin_ratios, phases["langevin"] = phase_langevin(models, batches)
    results["ratios"].update(langevin_ratios)
    results["langevin"] = {"steps": FLAGS.langevin_steps, "batch": BATCH, "variants": lv}
    results["targets"] = {k: results["ratios"][k] <= TOPK_TARGET
                          for k in ("topk_overhead_train_step", "topk_overhead_langevin")}
    results["targets"]["target"] = f"sparse / dense time ratio <= {TOPK_TARGET}"
    print("evaluation ...", flush=True)
    ev, phases["evaluation"] = phase_evaluation(models, source)
    results["evaluation"] = {"variants": ev, "notes": "fmnist_features: FashionMnistNet.features_and_probs "
                             "(preprocess + tf.function forward + numpy) over eval_images real images; generate_eager: "
                             "model.generate as evaluate.py calls it; generate_tf_function: tf.function(model.generate)."}
    print("flops ...", flush=True)
    results["flops"], phases["flops"] = phase_flops(models)
    results["cpu_load_by_phase"] = phases
    if memory is not None:
        results["memory"] = memory
        results["memory_method"] = (
            "Each variant's training (load data, build, compile, trace, 1 + warmup_steps + timed_steps steps) runs "
            "in a fresh subprocess of this script (--memory_child), started before the parent imports TensorFlow; "
            "peak = resource.getrusage(RUSAGE_SELF).ru_maxrss at the child's end, cross-checked with VmHWM of "
            "/proc/self/status. Linux carries ru_maxrss over fork + exec (a child started from a parent that holds "
            f"TensorFlow reports the parent's peak), so the parent held only {parent_maxrss:.0f} MB when the "
            "children ran. Both include the TensorFlow runtime (~750 MB for `import tensorflow` on this machine) "
            "and the data; 'tf_runtime' is a child that only imports TensorFlow and loads the data, and "
            "peak_above_tf_runtime_and_data_mb subtracts it.")
    results["loadavg_end"] = list(os.getloadavg())
    results["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    results["wall_s"] = time.perf_counter() - wall0
    busy = {k: v["other_processes_cpu_cores"] for k, v in phases.items()}
    notes = []
    if loadavg_start[0] > 2 or max(busy.values()) > 0.25:
        notes.append(f"Other work was running on the machine: loadavg at start {loadavg_start[0]:.2f}; other "
                     f"processes used up to {max(busy.values()):.2f} CPU cores during a timed phase. Absolute "
                     "numbers are depressed; the within-run ratios are still side by side.")
    if results["loadavg_end"][0] > 2:
        notes.append(f"loadavg at end {results['loadavg_end'][0]:.2f} > 2 (it includes this benchmark's two busy "
                     "threads and its memory subprocesses).")
    code_end = code_state()
    results["code"] = {"start": code_start,
                       "changed_during_run": code_end["tf_sparse_gen_sha256"] != code_start["tf_sparse_gen_sha256"]}
    if results["code"]["changed_during_run"]:
        results["code"]["end"] = code_end
        notes.append("tf_sparse_gen/ changed on disk during this run (another engineer's edits): the memory "
                     "subprocesses and this process may have imported different versions.")
    results["load_note"] = " ".join(notes)
    os.makedirs(FLAGS.out, exist_ok=True)
    with open(os.path.join(FLAGS.out, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2)
    print(write_markdown(results, os.path.join(FLAGS.out, "results.md")))


if __name__ == "__main__":
    app.run(main)
