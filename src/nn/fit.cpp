// The training loop: shuffled mini-batches, a Keras-style progress bar, validation, early stopping.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <ostream>

#include "convkit/error.hpp"
#include "convkit/train.hpp"
#include "core/strings.hpp"

namespace convkit {

using core::cat;
using Clock = std::chrono::steady_clock;

namespace {

// Rows idx[begin, end) of t, as a new tensor with that many rows.
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& idx, std::size_t begin, std::size_t end) {
  const int64_t row = t.size() / t.dim(0);
  Shape s = t.shape();
  s[0] = int64_t(end - begin);
  Tensor out(s);
  for (std::size_t i = begin; i < end; ++i)
    std::memcpy(out.data() + int64_t(i - begin) * row, t.data() + idx[i] * row, std::size_t(row) * sizeof(float));
  return out;
}

std::string seconds_text(double s) {
  if (s >= 3600) return cat(int(s / 3600), ":", (int(s) % 3600) / 60 < 10 ? "0" : "", (int(s) % 3600) / 60, ":",
                            int(s) % 60 < 10 ? "0" : "", int(s) % 60);
  if (s >= 60) return cat(int(s / 60), ":", int(s) % 60 < 10 ? "0" : "", int(s) % 60);
  return cat(int(std::lround(s)), "s");
}

std::string fixed4(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

// Keras' progress bar: "  469/938 [=============>...............] - ETA: 12s - loss: 0.6123 - accuracy: 0.7800".
class Progress {
 public:
  Progress(std::ostream* out, bool terminal, int64_t steps) : out_(out), terminal_(terminal), steps_(steps) {}

  void update(int64_t step, double loss, double acc, Clock::time_point start) {
    if (!out_ || !terminal_) return;
    const auto now = Clock::now();
    if (step < steps_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const double eta = step > 0 ? elapsed / double(step) * double(steps_ - step) : 0;
    *out_ << "\r" << bar(step) << " - ETA: " << seconds_text(eta) << " - loss: " << fixed4(loss)
          << " - accuracy: " << fixed4(acc) << "   " << std::flush;
  }

  void finish(const EpochLog& log) {
    if (!out_) return;
    const double per_step_ms = log.seconds * 1000.0 / double(std::max<int64_t>(steps_, 1));
    if (terminal_) *out_ << "\r";
    *out_ << bar(steps_) << " - " << seconds_text(log.seconds) << " " << int(std::lround(per_step_ms))
          << "ms/step - loss: " << fixed4(log.loss) << " - accuracy: " << fixed4(log.accuracy);
    if (log.val_loss) *out_ << " - val_loss: " << fixed4(*log.val_loss) << " - val_accuracy: " << fixed4(*log.val_accuracy);
    *out_ << " - lr: " << log.learning_rate << "\n" << std::flush;
  }

 private:
  std::string bar(int64_t step) const {
    constexpr int kWidth = 30;
    const std::string total = std::to_string(steps_);
    std::string counter = std::to_string(step);
    counter.insert(0, total.size() - std::min(total.size(), counter.size()), ' ');
    const int filled = int(double(kWidth) * double(step) / double(std::max<int64_t>(steps_, 1)));
    std::string b(std::size_t(kWidth), '.');
    for (int i = 0; i < filled; ++i) b[std::size_t(i)] = '=';
    if (filled < kWidth && step > 0) b[std::size_t(std::max(filled, 0))] = '>';
    return cat(counter, "/", total, " [", b, "]");
  }
  std::ostream* out_;
  bool terminal_;
  int64_t steps_;
  Clock::time_point last_{};
};

// Every step checks every gradient: a branch-free test of the exponent bits, which vectorises.
bool all_finite(const Tensor& t) {
  const float* p = t.data();
  uint32_t nonfinite = 0;
  for (int64_t i = 0; i < t.size(); ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, sizeof bits);
    nonfinite |= (bits & 0x7f800000u) == 0x7f800000u;  // exponent all ones: infinity or NaN
  }
  return nonfinite == 0;
}

void check_data(const char* what, const Tensor& x, const Tensor& y) {
  if (x.rank() < 1 || x.dim(0) == 0) throw Error(cat(what, ": no samples (inputs of shape ", shape_to_string(x.shape()), ")"));
  if (y.rank() < 1 || y.dim(0) != x.dim(0))
    throw Error(cat(what, ": ", x.dim(0), " inputs but targets of shape ", shape_to_string(y.shape())));
}

}  // namespace

EvalResult evaluate(Sequential& model, const Tensor& x, const Tensor& y, const Loss& loss, int batch_size) {
  check_data("evaluate", x, y);
  if (batch_size <= 0) throw Error(cat("evaluate: batch_size must be positive, got ", batch_size));
  const int64_t n = x.dim(0);
  std::vector<int64_t> idx(static_cast<std::size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  EvalResult r;
  const FrozenForInference frozen(model);  // the weights are packed once for the whole pass
  for (int64_t start = 0; start < n; start += batch_size) {
    const std::size_t end = std::size_t(std::min<int64_t>(n, start + batch_size));
    const Tensor xb = gather_rows(x, idx, std::size_t(start), end), yb = gather_rows(y, idx, std::size_t(start), end);
    const Tensor pred = model.forward(xb, false);
    const double b = double(end) - double(start);
    r.loss += loss.compute(pred, yb, nullptr) * b;
    r.accuracy += accuracy(pred, yb) * b;
  }
  r.samples = n;
  r.loss /= double(n);
  r.accuracy /= double(n);
  return r;
}

History fit(Sequential& model, const Tensor& x, const Tensor& y, const Loss& loss, Optimizer& opt,
            const FitOptions& o) {
  check_data("fit", x, y);
  if (o.epochs <= 0) throw Error(cat("fit: epochs must be positive, got ", o.epochs));
  if (o.batch_size <= 0) throw Error(cat("fit: batch_size must be positive, got ", o.batch_size));
  if (o.steps_per_epoch < 0) throw Error(cat("fit: steps_per_epoch must be non-negative, got ", o.steps_per_epoch));
  if ((o.x_val == nullptr) != (o.y_val == nullptr)) throw Error("fit: validation needs both inputs and targets");
  if (o.x_val) check_data("fit (validation data)", *o.x_val, *o.y_val);
  const bool monitor_val = o.monitor.rfind("val_", 0) == 0;
  const bool monitor_acc = o.monitor.find("accuracy") != std::string::npos;
  if (o.monitor != "loss" && o.monitor != "accuracy" && o.monitor != "val_loss" && o.monitor != "val_accuracy")
    throw Error(cat("fit: monitor must be loss, accuracy, val_loss or val_accuracy, got '", o.monitor, "'"));
  if (monitor_val && !o.x_val && o.patience > 0)
    throw Error(cat("fit: early stopping monitors '", o.monitor, "' but no validation data was given"));

  const int64_t n = x.dim(0);
  const int64_t full_steps = (n + o.batch_size - 1) / o.batch_size;
  const int64_t steps = o.steps_per_epoch > 0 ? o.steps_per_epoch : full_steps;
  const int64_t total_steps = steps * o.epochs;
  const bool terminal = o.progress_is_terminal.value_or(::isatty(STDOUT_FILENO) != 0);
  std::vector<Weight*> trainable = model.trainable_weights();
  opt.prepare(trainable);

  Rng rng(o.seed);
  std::vector<int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::size_t cursor = order.size();  // position in the current pass over the data

  History h;
  double best = monitor_acc ? -INFINITY : INFINITY;
  int since_best = 0;
  std::vector<Tensor> best_weights;
  int64_t global_step = opt.iterations;
  // Resuming (FitOptions::state): the position an earlier run of the same job saved, checked against this run.
  FitState* const st = o.state;
  const FitState resumed = st && st->started ? *st : FitState{};
  if (resumed.started) {
    if (int64_t(resumed.order.size()) != n || resumed.cursor < 0 || resumed.cursor > n || resumed.epoch < 0 ||
        resumed.epoch >= o.epochs || resumed.step < 0 || resumed.step >= steps)
      throw Error(cat("fit: cannot resume at epoch ", resumed.epoch + 1, ", step ", resumed.step, " of a pass over ",
                      resumed.order.size(), " samples: this run has ", o.epochs, " epochs of ", steps, " steps over ",
                      n, " samples"));
    for (int64_t i : resumed.order)
      if (i < 0 || i >= n) throw Error(cat("fit: cannot resume: the saved order holds sample ", i, " of ", n));
    rng.set_state(resumed.shuffle_rng);
    order = resumed.order;
    cursor = std::size_t(resumed.cursor);
    if (resumed.best) best = *resumed.best;
    since_best = resumed.since_best;
  }
  const auto save_state = [&](int epochs_done, int64_t step, double loss_sum, double acc_sum, int64_t seen,
                              float lr) {
    if (!st) return;
    st->started = true;
    st->epoch = epochs_done;
    st->step = step;
    st->shuffle_rng = rng.state();
    st->order = order;
    st->cursor = int64_t(cursor);
    st->loss_sum = loss_sum;
    st->acc_sum = acc_sum;
    st->seen = seen;
    st->learning_rate = lr;
    st->best = std::isfinite(best) ? std::optional<double>(best) : std::nullopt;
    st->since_best = since_best;
  };
  const auto stop_requested = [&] { return o.stop_requested && o.stop_requested->load(); };
  for (int epoch = resumed.started ? resumed.epoch + 1 : 1; epoch <= o.epochs; ++epoch) {
    if (o.progress) *o.progress << "Epoch " << epoch << "/" << o.epochs << "\n";
    Progress progress(o.progress, terminal, steps);
    const auto start = Clock::now();
    double loss_sum = 0, acc_sum = 0;
    int64_t seen = 0;
    float lr = 0;
    int64_t first_step = 0;
    if (resumed.started && epoch == resumed.epoch + 1) {  // the interrupted epoch: carry on where it stopped
      first_step = resumed.step;
      loss_sum = resumed.loss_sum;
      acc_sum = resumed.acc_sum;
      seen = resumed.seen;
      lr = resumed.learning_rate;
    }
    for (int64_t s = first_step; s < steps; ++s) {
      if (cursor >= order.size()) {  // a new pass over the data, freshly shuffled
        if (o.shuffle)
          for (std::size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
        cursor = 0;
      }
      const std::size_t end = std::min(order.size(), cursor + std::size_t(o.batch_size));
      const Tensor xb = gather_rows(x, order, cursor, end), yb = gather_rows(y, order, cursor, end);
      cursor = end;
      const Tensor pred = model.forward(xb, true);
      Tensor dpred;
      const double l = loss.compute(pred, yb, &dpred);
      // Where a non-finite value came from: the input, the first layer with a non-finite output, or `otherwise`.
      auto culprit_text = [&](const std::string& otherwise) {
        const std::string culprit = model.first_nonfinite_layer(xb, true);
        return culprit.empty()       ? otherwise
               : culprit == "input" ? std::string("the input batch holds non-finite values")
                                    : cat("the first layer with a non-finite output is '", culprit, "'");
      };
      if (!std::isfinite(l)) {
        throw Error(cat("training stopped: the loss became ", std::isnan(l) ? "NaN" : "infinite", " at epoch ", epoch,
                        ", step ", s + 1, "; ",
                        culprit_text("every layer's output was finite: the loss itself overflowed")));
      }
      model.backward(dpred, /*input_gradient=*/false);  // nobody needs dL/d(input): the first layer skips it
      // A finite loss does not imply finite gradients: a weight gradient sums over the whole batch and can
      // overflow where every output is finite (tests/nn/test_training.cpp, NonFiniteGradientStopsBeforeTheStep).
      // Stop before the step writes infinities or NaN into the weights.
      for (std::size_t i = 0; i < model.size(); ++i)
        for (const Weight* w : model.layer(i).weights())
          if (w->trainable && !all_finite(w->grad))
            throw Error(cat("training stopped: the gradient of '", model.layer(i).name(), "' ", w->name,
                            " became non-finite at epoch ", epoch, ", step ", s + 1, "; ",
                            culprit_text("every layer's output was finite")));
      lr = o.schedule.at(global_step, total_steps, steps);
      opt.step(trainable, lr);
      ++global_step;
      const double b = double(xb.dim(0));
      loss_sum += l * b;
      acc_sum += accuracy(pred, yb) * b;
      seen += xb.dim(0);
      progress.update(s + 1, loss_sum / double(seen), acc_sum / double(seen), start);
      // Interrupted mid-epoch: stop after this step. After an epoch's last step, the epoch finishes first.
      if (s + 1 < steps && stop_requested()) {
        save_state(epoch - 1, s + 1, loss_sum, acc_sum, seen, lr);
        if (o.progress) *o.progress << (terminal ? "\n" : "") << "Interrupted at epoch " << epoch << ", step " << s + 1
                                    << "\n" << std::flush;
        h.stopped_reason = "interrupted";
        return h;
      }
    }
    EpochLog log;
    log.epoch = epoch;
    log.loss = loss_sum / double(seen);
    log.accuracy = acc_sum / double(seen);
    log.learning_rate = lr;
    if (o.x_val) {
      const EvalResult v = evaluate(model, *o.x_val, *o.y_val, loss);
      log.val_loss = v.loss;
      log.val_accuracy = v.accuracy;
    }
    log.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    progress.finish(log);
    h.epochs.push_back(log);

    const double value = o.monitor == "loss" ? log.loss
                         : o.monitor == "accuracy" ? log.accuracy
                         : o.monitor == "val_loss" ? log.val_loss.value_or(log.loss)
                                                   : log.val_accuracy.value_or(log.accuracy);
    const bool improved = monitor_acc ? value > best : value < best;
    if (improved) {
      best = value;
      since_best = 0;
      if (o.restore_best_weights) {
        best_weights.clear();
        for (Weight* w : model.weights()) best_weights.push_back(w->value);
      }
    } else {
      ++since_best;
    }
    save_state(epoch, 0, 0, 0, 0, lr);
    if (o.on_epoch_end && !o.on_epoch_end(log, improved)) {
      h.stopped_reason = "callback";
      break;
    }
    if (o.patience > 0 && since_best >= o.patience) {
      h.stopped_reason = "early stopping";
      if (o.progress) *o.progress << "Early stopping: " << o.monitor << " has not improved for " << o.patience
                                  << " epochs\n";
      break;
    }
    if (epoch < o.epochs && stop_requested()) {
      h.stopped_reason = "interrupted";
      return h;
    }
  }
  if (o.restore_best_weights && !best_weights.empty()) {
    std::size_t i = 0;
    for (Weight* w : model.weights()) w->value = best_weights[i++];
  }
  return h;
}

}  // namespace convkit
