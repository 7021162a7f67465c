"""lab5-deep-learning end to end: build, release without leaks, grade typical submissions through the pipeline.

One course per module (``labkit.run_lab`` on the session's build); every submission is graded in a
single ``grade`` call (the solution and the release are graded in ``test_labs_common.py``): two other correct approaches (other architectures; another
training loop) and two typical mistakes (the test digits leak into training; a wrong output size).
Training is seeded, so the scores below are exact; the tests' tolerances absorb what differs
between machines.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from edsgrade.simulate.cohort import solution_of
from labkit import failed_cases, lost, replaced, run_lab, scores

A = "lab5-deep-learning"

# --- alternative correct answers -------------------------------------------------------------------------
# another training loop: no helper functions, unweighted mean of the batch losses, the test set evaluated
# in one pass on its tensors, functional cross-entropy (train_epoch and evaluate stay: later cells use them)
OTHER_LOOP = '''
def train_epoch(model, loader, optimizer, loss_fn):
    model.train()
    losses = []
    for images, labels in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return sum(losses) / len(losses)


def fit(model, train_loader, test_loader, epochs, lr):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    images_test, labels_test = test_loader.dataset.tensors
    history = {"train_loss": [], "test_loss": [], "test_accuracy": []}
    for epoch in range(epochs):
        history["train_loss"].append(train_epoch(model, train_loader, optimizer, F.cross_entropy))
        model.eval()
        with torch.inference_mode():
            logits = model(images_test)
        history["test_loss"].append(F.cross_entropy(logits, labels_test).item())
        history["test_accuracy"].append((logits.argmax(1) == labels_test).float().mean().item())
    return history


t0 = time.perf_counter()
mlp_history = fit(mlp, train_loader, test_loader, EPOCHS, 5e-3)
mlp_seconds = time.perf_counter() - t0
plt.semilogy(mlp_history["train_loss"], label="train")
plt.semilogy(mlp_history["test_loss"], label="test")
plt.legend()
'''

# predictions through softmax probabilities, written for each model
OTHER_PREDICT = '''
def predict_mlp(X):
    mlp.eval()
    with torch.no_grad():
        proba = torch.softmax(mlp(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))), dim=1)
    return proba.numpy().argmax(axis=1)


def predict_with(model, X):
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))).argmax(dim=1).numpy()


mlp_test_accuracy = accuracy_score(y_test, predict_mlp(X_test))
'''

# a CNN written as a class (reshaping in forward), with a wider first filter
CLASS_CNN = '''
class DigitCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x):
        x = x.view(-1, 1, 8, 8)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


torch.manual_seed(SEED)
cnn = DigitCNN()
cnn_out_shape = list(cnn(torch.zeros(5, 64)).shape)
cnn_n_params = sum(p.numel() for p in cnn.parameters() if p.requires_grad)
t0 = time.perf_counter()
cnn_history = fit(cnn, train_loader, test_loader, 20, lr=5e-3)
cnn_seconds = time.perf_counter() - t0


def predict_cnn(X):
    return predict_with(cnn, X)


cnn_test_accuracy = float((predict_cnn(X_test) == y_test).mean())
'''

# the leaderboard with a small MLP instead of a CNN
SMALL_MLP = '''
torch.manual_seed(SEED)
small_model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
small_n_params = sum(p.numel() for p in small_model.parameters())
t0 = time.perf_counter()
fit(small_model, train_loader, test_loader, 30, lr=1e-2)
small_seconds = time.perf_counter() - t0
predict_small = lambda X: predict_with(small_model, X)
small_test_accuracy = float(np.mean(predict_small(X_test) == y_test))
leaderboard = pd.DataFrame([[mlp_n_params, mlp_seconds, mlp_test_accuracy],
                            [cnn_n_params, cnn_seconds, cnn_test_accuracy],
                            [small_n_params, small_seconds, small_test_accuracy]],
                           index=["mlp", "cnn", "small"], columns=["parameters", "seconds", "test_accuracy"])
'''

# a 1D CNN as a class: other kernels and pooling, the global maximum taken in forward
CLASS_SEISMIC = '''
class SeismicNet(nn.Module):
    def __init__(self, n_classes=5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(3, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(5),
            nn.Conv1d(16, 16, 7, padding=3), nn.ReLU(), nn.MaxPool1d(5),
            nn.Conv1d(16, 32, 5, padding=2), nn.ReLU())
        self.head = nn.Linear(32, n_classes)

    def forward(self, x):
        return self.head(self.features(x).amax(dim=2))


torch.manual_seed(SEED)
seis_train_loader = DataLoader(TensorDataset(torch.from_numpy(Xs_train), torch.from_numpy(ys_train).long()),
                               batch_size=32, shuffle=True)
seis_test_loader = DataLoader(TensorDataset(torch.from_numpy(Xs_test), torch.from_numpy(ys_test).long()), batch_size=64)
seismic_cnn = SeismicNet()
seis_out_shape = list(seismic_cnn(torch.zeros(4, 3, 2000)).shape)
seis_history = fit(seismic_cnn, seis_train_loader, seis_test_loader, 15, lr=3e-3)
predict_seismic = lambda X: predict_with(seismic_cnn, normalize_events(X))
seis_test_accuracy = float(np.mean(predict_seismic(Xs_test) == ys_test))
'''

# one submission holds every alternative (each question's answer differs from the master's), to keep the
# test short: each heavy notebook costs a full training run
ALTERNATIVES = {"alternatives": {"a4": OTHER_LOOP, "a5": OTHER_PREDICT, "a6": CLASS_CNN, "a7": SMALL_MLP,
                                 "a9": CLASS_SEISMIC}}


def wrong_answers(master) -> dict[str, dict[str, str]]:
    """Typical mistakes, made from the master's own answers."""
    # the training loader built on every digit: each model then learns the test digits too
    leak = replaced(solution_of(master, "a2"), "TensorDataset(torch.tensor(X_train), torch.tensor(y_train, dtype=torch.long))",
                    "TensorDataset(torch.tensor(X), torch.tensor(y, dtype=torch.long))")
    # "digits 0 to 10": eleven outputs; cross-entropy trains it anyway, the predictions stay right
    eleven = replaced(solution_of(master, "a3"), "nn.Linear(64, 10))", "nn.Linear(64, 11))")
    # both in one submission (to keep the test short): they lose the points of disjoint cases
    return {"mistakes": {"a2": leak, "a3": eleven}}


@pytest.fixture(scope="module")
def lab5(lab_builds, tmp_path_factory) -> SimpleNamespace:
    return run_lab(lab_builds, tmp_path_factory.mktemp("lab5"), A,
                   answers=lambda course, master: {**ALTERNATIVES, **wrong_answers(master)})


def test_the_master_runs_within_the_time_budget_with_enough_questions(lab5):
    assert lab5.report.master_seconds < 180
    assert lab5.report.questions >= 8
    assert {m.grade_id for m in lab5.master.manual} == {"interp1", "interp2", "interp3"}
    # the first half of the questions (what the demo's "partial" student answers) is about digits only
    first_half = lab5.master.questions[: len(lab5.master.questions) // 2]
    assert [q.grade_id for q in first_half] == ["q1", "q2", "q3", "q4", "q5", "q6"]


def test_data_is_generated_at_build(lab5):
    # (every lab's release is small, its solution gets every point and its release none: test_labs_common.py)
    data = lab5.course.release_dir(A) / "data"
    assert sorted(p.name for p in data.iterdir()) == ["picking.npz", "volcano_events.npz"]
    assert lab5.master.max_auto == 29


@pytest.mark.parametrize("student", sorted(ALTERNATIVES))
def test_alternative_correct_approaches_get_full_marks(lab5, student):
    result = lab5.results[student]
    assert result.score == lab5.master.max_auto, lost(result)


def test_training_on_the_test_digits_loses_the_leak_points(lab5):
    # the training loader built on every digit: the loader's size and each model that saw the test
    # digits are caught (the judge measures the models on the test digits it rebuilds itself)
    failed = failed_cases(lab5.results["mistakes"])
    assert failed.get("q2") == {"the_loader_covers_the_training_set_only"}, failed
    assert failed.get("q5") == {"mlp_never_saw_the_test_digits"}, failed
    assert failed.get("q6") == {"cnn_never_saw_the_test_digits"}, failed


def test_a_wrong_output_size_loses_the_architecture_points(lab5):
    got = scores(lab5.results["mistakes"])
    assert got["q3"] == 0
    assert failed_cases(lab5.results["mistakes"])["q3"] == {"one_output_per_digit", "parameter_count_of_the_mlp"}


def test_the_mistakes_lose_nothing_else(lab5):
    result = lab5.results["mistakes"]
    assert set(failed_cases(result)) == {"q2", "q3", "q5", "q6"}, lost(result)
    assert result.score == lab5.master.max_auto - 1 - 3 - 1 - 1


def test_the_release_holds_no_solution_function(lab5):
    # (no solution or hidden line in any lab's release: test_labs_common.py)
    release = lab5.course.release_dir(A)
    everything = "\n".join(p.read_text(errors="replace") for p in release.rglob("*")
                           if p.is_file() and p.suffix != ".npz")
    assert "def fit" not in everything and "class UNet1d" not in everything and "_judge_test_digits" not in everything


def test_feedback_names_hidden_cases_but_never_shows_their_code(lab5):
    secret = lab5.master.secret_lines()
    for student in lab5.results:
        html = (lab5.root / "feedback" / student / A / f"{A}.html").read_text()
        leaked = [line for line in secret if len(line) > 12 and line in html]
        assert not leaked, (student, leaked[:3])
    html = (lab5.root / "feedback" / "mistakes" / A / f"{A}.html").read_text()
    assert "mlp_never_saw_the_test_digits" in html
    assert "too good for this MLP" not in html  # the hidden case's message stays with the instructor
