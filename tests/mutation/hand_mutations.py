"""Hand-applied mutations of issue #13: each must make at least one test fail.

    .venv/bin/python tests/mutation/hand_mutations.py [--out tests/mutation/hand_mutations.txt]

Every mutation is one exact text replacement in a scratch copy of the committed tree
(git archive HEAD, never the working tree); the listed test files run against it
(through scripts/mutation_runner.py's fork server, TensorFlow imported once), and the
mutation counts as caught when pytest fails. The unmutated copy must pass first.
A module may live at either of two paths (the package was being reorganised).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOSSES = ["tf_sparse_gen/losses.py"]
ANDOR = ["tf_sparse_gen/models/cooperative.py", "tf_sparse_gen/families/andor/model.py"]
SPGAN = ["tf_sparse_gen/models/spgan.py", "tf_sparse_gen/families/spgan/model.py"]
SELFEX = ["tf_sparse_gen/models/selfexgan.py", "tf_sparse_gen/families/selfexgan/model.py"]
BASE = ["tf_sparse_gen/models/base.py", "tf_sparse_gen/families/base.py"]
EQ, FAM = "tests/test_equations.py", "tests/test_family_losses.py"

# (name, module paths, old text, new text, tests)
MUTATIONS = [
    # --- the sign of every loss
    ("critic (Wasserstein) loss sign flipped", LOSSES,
     "return tf.reduce_mean(_f32(fake_scores)) - tf.reduce_mean(_f32(real_scores))",
     "return tf.reduce_mean(_f32(real_scores)) - tf.reduce_mean(_f32(fake_scores))", [EQ, FAM]),
    ("Wasserstein generator loss sign flipped", LOSSES,
     "return -tf.reduce_mean(_f32(fake_scores))", "return tf.reduce_mean(_f32(fake_scores))", [EQ, FAM]),
    ("gradient penalty sign flipped", LOSSES,
     "return tf.reduce_mean(tf.square(norm - 1.0))", "return -tf.reduce_mean(tf.square(norm - 1.0))", [EQ, FAM]),
    ("ABP reconstruction loss sign flipped", LOSSES,
     "return tf.reduce_mean(per_image) / (2.0 * sigma ** 2)", "return -tf.reduce_mean(per_image) / (2.0 * sigma ** 2)",
     [EQ, FAM]),
    ("Langevin energy sign flipped", LOSSES,
     "return rec + 0.5 * tf.reduce_sum(tf.square(_f32(z)), axis=-1)",
     "return -(rec + 0.5 * tf.reduce_sum(tf.square(_f32(z)), axis=-1))", [EQ]),
    ("minimax discriminator loss: real/fake signs flipped", LOSSES,
     "return (tf.reduce_mean(tf.nn.softplus(-_f32(real_logits)))\n            + tf.reduce_mean(tf.nn.softplus(_f32(fake_logits))))",
     "return (tf.reduce_mean(tf.nn.softplus(_f32(real_logits)))\n            + tf.reduce_mean(tf.nn.softplus(-_f32(fake_logits))))",
     [EQ, FAM]),
    ("minimax generator loss sign flipped", LOSSES,
     "return tf.reduce_mean(tf.nn.softplus(-_f32(fake_logits)))", "return tf.reduce_mean(tf.nn.softplus(_f32(fake_logits)))",
     [EQ, FAM]),
    ("KL term sign flipped", LOSSES,
     "return tf.reduce_mean(0.5 * (var + tf.square(mu)) - 0.5 * tf.math.log(var + epsilon) - 0.5)",
     "return -tf.reduce_mean(0.5 * (var + tf.square(mu)) - 0.5 * tf.math.log(var + epsilon) - 0.5)", [EQ, FAM]),
    ("andor: critic term subtracted in the generator loss", ANDOR,
     "g_loss = g_loss + self.critic_weight * critic_term", "g_loss = g_loss - self.critic_weight * critic_term", [FAM]),
    ("andor: gradient penalty subtracted from the critic loss", ANDOR,
     "c_loss = c_loss + a.gp_weight * gp", "c_loss = c_loss - a.gp_weight * gp", [FAM]),
    ("spgan: gradient penalty subtracted from the critic loss", SPGAN,
     "d_loss = w_loss + self.hp.gp_weight * gp", "d_loss = w_loss - self.hp.gp_weight * gp", [FAM]),
    ("spgan: reconstruction loss sign flipped", SPGAN,
     "r_loss = self.hp.recon_weight * mse", "r_loss = -self.hp.recon_weight * mse", [FAM]),
    ("spgan: encoder loss sign flipped", SPGAN,
     "e_loss = tf.reduce_mean(tf.square(self.encoder(fakes, training=True) - z))",
     "e_loss = -tf.reduce_mean(tf.square(self.encoder(fakes, training=True) - z))", [FAM]),
    ("selfexgan: E's D2 term without the inverted label", SELFEX,
     "e_d2 = losses.minimax_generator_loss(-real_logits)", "e_d2 = losses.minimax_generator_loss(real_logits)", [FAM]),
    ("selfexgan: G's D2 term with the wrong label", SELFEX,
     "g_d2 = losses.minimax_generator_loss(fake_logits)", "g_d2 = losses.minimax_generator_loss(-fake_logits)", [FAM]),
    ("selfexgan: G's D1 term with the wrong label", SELFEX,
     "g_d1 = losses.minimax_generator_loss(self.d1(fakes, training=True))",
     "g_d1 = losses.minimax_generator_loss(-self.d1(fakes, training=True))", [FAM]),
    ("selfexgan: KL term subtracted", SELFEX, "e_loss = hp.kl_weight * kl", "e_loss = -hp.kl_weight * kl", [FAM]),
    # --- delta x3 and /3
    ("Langevin: delta x3 in the gradient step", ANDOR,
     "z = z - 0.5 * delta ** 2 * tape.gradient(energy, z)", "z = z - 0.5 * (3 * delta) ** 2 * tape.gradient(energy, z)",
     [EQ]),
    ("Langevin: delta /3 in the gradient step", ANDOR,
     "z = z - 0.5 * delta ** 2 * tape.gradient(energy, z)", "z = z - 0.5 * (delta / 3) ** 2 * tape.gradient(energy, z)",
     [EQ]),
    ("Langevin: delta x3 in the noise", ANDOR,
     "z = z + delta * tf.reshape(eps, tf.shape(z))", "z = z + 3 * delta * tf.reshape(eps, tf.shape(z))", [EQ]),
    ("Langevin: delta x3 everywhere", ANDOR,
     "sigma, delta = self.hp.sigma, self.hp.delta", "sigma, delta = self.hp.sigma, 3 * self.hp.delta", [EQ]),
    ("Langevin: pixel-mean instead of pixel-sum energy gradient", LOSSES,
     "rec = tf.reduce_sum(tf.square(diff), axis=[1, 2, 3]) / (2.0 * sigma ** 2)",
     "rec = tf.reduce_mean(tf.square(diff), axis=[1, 2, 3]) / (2.0 * sigma ** 2)", [EQ]),
    # --- the reconstruction term x3
    ("ABP reconstruction loss x3", LOSSES,
     "return tf.reduce_mean(per_image) / (2.0 * sigma ** 2)", "return 3 * tf.reduce_mean(per_image) / (2.0 * sigma ** 2)",
     [EQ, FAM]),
    ("andor: reconstruction term x3 in the generator loss", ANDOR,
     "g_loss = g_loss + recon_loss", "g_loss = g_loss + 3 * recon_loss", [FAM]),
    ("spgan: reconstruction weight x3", SPGAN,
     "r_loss = self.hp.recon_weight * mse", "r_loss = 3 * self.hp.recon_weight * mse", [FAM]),
    # --- eps from the wrong distribution / shape
    ("andor: eps from a normal distribution", ANDOR,
     "eps = self.random_uniform([batch, 1, 1, 1])", "eps = self.random_normal([batch, 1, 1, 1])", [FAM]),
    ("spgan: eps from a normal distribution", SPGAN,
     "eps = self.random_uniform([batch, 1, 1, 1])", "eps = self.random_normal([batch, 1, 1, 1])", [FAM]),
    ("base: random_uniform draws a normal", BASE,
     "return self._draw_for_global_batch(keras.random.uniform, shape)",
     "return self._draw_for_global_batch(keras.random.normal, shape)", [EQ]),
    ("andor: one eps per pixel instead of per example", ANDOR,
     "eps = self.random_uniform([batch, 1, 1, 1])", "eps = self.random_uniform([batch, *self.image_shape])", [FAM]),
    ("spgan: one eps for the whole batch", SPGAN,
     "eps = self.random_uniform([batch, 1, 1, 1])", "eps = self.random_uniform([1, 1, 1, 1])", [FAM]),
    ("gradient penalty: eps and 1 - eps swapped", LOSSES,
     "x_hat = epsilon * real + (1.0 - epsilon) * fake", "x_hat = (1.0 - epsilon) * real + epsilon * fake", [EQ, FAM]),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=os.path.join(ROOT, "tests", "mutation", "hand_mutations.txt"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tfsg-hand-")
    subprocess.run(f"git -C {ROOT} archive HEAD | tar -x -C {work}", shell=True, check=True)
    for so in os.listdir(os.path.join(ROOT, "tf_sparse_gen", "kernels")):
        if so.endswith(".so"):
            shutil.copy(os.path.join(ROOT, "tf_sparse_gen", "kernels", so), os.path.join(work, "tf_sparse_gen", "kernels"))
    sock = os.path.join(work, "runner.sock")
    runner = os.path.join(ROOT, "scripts", "mutation_runner.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONDONTWRITEBYTECODE="1")
    server = subprocess.Popen([sys.executable, runner, "serve", sock], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if os.path.exists(sock):
                break
            time.sleep(0.2)

        def pytest(tests):
            proc = subprocess.run([sys.executable, runner, "run", sock, "--", "-x", "-q", "-p", "no:cacheprovider",
                                   *tests], cwd=work, env=env, capture_output=True, text=True, timeout=900)
            lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
            failed = [ln.split(" - ")[0] for ln in lines if ln.startswith("FAILED")]
            return proc.returncode, (failed[0] if failed else (lines[-1] if lines else ""))

        code, last = pytest([EQ, FAM])
        if code != 0:
            sys.exit(f"the unmutated copy fails its tests: {last}")
        rows = []
        for name, paths, old, new, tests in MUTATIONS:
            path = next((p for p in paths if os.path.exists(os.path.join(work, p))), None)
            if path is None:
                rows.append((name, "NOT APPLIED (module not found)", ""))
                continue
            full = os.path.join(work, path)
            source = open(full).read()
            if source.count(old) != 1:
                rows.append((name, f"NOT APPLIED ({source.count(old)} matches in {path})", ""))
                continue
            open(full, "w").write(source.replace(old, new))
            try:
                code, detail = pytest(tests)
            finally:
                open(full, "w").write(source)
            rows.append((name, "caught" if code != 0 else "NOT CAUGHT", detail))
            print(f"{rows[-1][1]:>8}  {name}  {detail}", flush=True)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    with open(args.out, "w") as f:
        f.write("# tests/mutation/hand_mutations.py: hand-applied mutations and the first test that fails\n")
        for name, result, detail in rows:
            f.write(f"{result}\t{name}\t{detail}\n")
    print(f"{sum(r[1] == 'caught' for r in rows)}/{len(rows)} caught; wrote {args.out}")
    sys.exit(0 if all(r[1] == "caught" for r in rows) else 1)


if __name__ == "__main__":
    main()
