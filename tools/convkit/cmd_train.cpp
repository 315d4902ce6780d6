// convkit train — learn a model's weights on an IDX dataset (Fashion-MNIST by default).
//
//   convkit train --model ARCH.json [--data DIR] [--epochs N] [--batch-size B] [--steps-per-epoch N]
//                 [--optimizer adam|adamw|sgd] [--lr X] [--schedule constant|step|cosine] [--seed S]
//                 [--validation-split F] [--patience N] [--save-best] [--checkpoint CKPT] --out MODEL.safetensors
//
// Everything is checked before the first step (the architecture, the data, that --out can be written); the model
// is written atomically at the end, so an interrupted run leaves any earlier file as it was.
#include <CLI/CLI.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "commands.hpp"
#include "convkit/error.hpp"
#include "convkit/io.hpp"
#include "convkit/runtime.hpp"
#include "convkit/serialize.hpp"
#include "convkit/train.hpp"
#include "convkit/viz.hpp"
#include "model_files.hpp"
#include "options.hpp"

namespace convkit::cli {

namespace {

// Set by SIGINT: fit() finishes the step it is in, then train saves a checkpoint and exits (status 130).
std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the SIGINT handler may only touch a lock-free atomic");
extern "C" void on_sigint(int) { g_interrupted.store(true); }

struct TrainOptions {
  std::string model, data = std::string(kFashionMnistDir), out, checkpoint, resume;
  std::string epochs = "5", batch_size = "64", steps_per_epoch = "0", optimizer = "adam", lr = "0.001";
  std::string momentum = "0.9", weight_decay = "0.004", schedule = "constant", step_epochs = "10", lr_factor = "0.1";
  std::string seed = "0", validation_split = "0", patience = "0", monitor, threads, limit = "0";
  std::string loss = "sparse_categorical_crossentropy";
  std::string curves, history;  // training curves (SVG) and per-epoch CSV; default: next to --out
  bool no_curves = false;
  bool nesterov = false, save_best = false, quiet = false;
};

// The first n rows of t (all if n is 0 or at least the row count).
Tensor first_rows(const Tensor& t, int64_t n) {
  if (n <= 0 || n >= t.dim(0)) return t;
  Shape s = t.shape();
  s[0] = n;
  Tensor out(s);
  std::memcpy(out.data(), t.data(), static_cast<std::size_t>(out.size()) * sizeof(float));
  return out;
}

Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  Shape s = t.shape();
  s[0] = end - begin;
  Tensor out(s);
  const int64_t row = t.size() / t.dim(0);
  std::memcpy(out.data(), t.data() + begin * row, static_cast<std::size_t>(out.size()) * sizeof(float));
  return out;
}

std::unique_ptr<Optimizer> make_optimizer(const TrainOptions& o) {
  if (o.optimizer == "adam") return make_adam();
  if (o.optimizer == "adamw")
    return make_adamw({.weight_decay = float(parse_real("--weight-decay", o.weight_decay, 0, 1))});
  if (o.optimizer == "sgd")
    return make_sgd({.momentum = float(parse_real("--momentum", o.momentum, 0, 0.999999)), .nesterov = o.nesterov});
  throw Error(cat("--optimizer: unknown optimizer '", o.optimizer, "' (expected adam, adamw or sgd)"));
}

LrSchedule make_schedule(const TrainOptions& o) {
  LrSchedule s;
  s.initial = float(parse_real("--lr", o.lr, 1e-12, 100));
  if (o.schedule == "constant") {
    s.kind = LrSchedule::Kind::constant;
  } else if (o.schedule == "step") {
    s.kind = LrSchedule::Kind::step;
    s.step_epochs = parse_positive("--step-epochs", o.step_epochs);
    s.factor = float(parse_real("--lr-factor", o.lr_factor, 0, 1));
  } else if (o.schedule == "cosine") {
    s.kind = LrSchedule::Kind::cosine;
  } else {
    throw Error(cat("--schedule: unknown schedule '", o.schedule, "' (expected constant, step or cosine)"));
  }
  return s;
}

void run(const TrainOptions& o) {
  // ---- everything checked before the first step ----
  const int epochs = parse_positive("--epochs", o.epochs);
  const int batch = parse_positive("--batch-size", o.batch_size);
  const int64_t steps = parse_int("--steps-per-epoch", o.steps_per_epoch, 0, int64_t{1} << 40);
  const uint64_t seed = static_cast<uint64_t>(parse_int("--seed", o.seed, 0, INT64_MAX));
  const double split = parse_real("--validation-split", o.validation_split, 0, 0.9);
  const int patience = static_cast<int>(parse_int("--patience", o.patience, 0, 1 << 20));
  const int64_t limit = parse_int("--limit", o.limit, 0, int64_t{1} << 40);
  if (!o.threads.empty()) set_num_threads(parse_positive("--threads", o.threads));
  std::unique_ptr<Optimizer> opt = make_optimizer(o);
  const LrSchedule schedule = make_schedule(o);
  check_writable("--out", o.out);
  if (!o.checkpoint.empty()) check_writable("--checkpoint", o.checkpoint);

  Sequential model = load_any_model("--model", o.model, seed);
  const bool probabilities = ends_in_softmax(model);
  std::unique_ptr<Loss> loss;
  try {
    loss = make_loss(o.loss, !probabilities);
  } catch (const Error& e) {
    throw Error(cat("--loss: ", e.what()));
  }
  LabelledData train = load_split("--data", o.data, Split::train);
  const LabelledData test = load_split("--data", o.data, Split::test);
  if (limit > 0) {  // first_rows copies: without a limit, that copy of the whole set would double the peak memory
    train.x = first_rows(train.x, limit);
    train.y = first_rows(train.y, limit);
  }
  if (train.x.shape() != Shape{train.x.dim(0), model.input_shape()[1], model.input_shape()[2], model.input_shape()[3]})
    throw Error(cat("--data: images of shape ", shape_to_string(train.x.shape()), " do not fit the model's input ",
                    "(None, ", model.input_shape()[1], ", ", model.input_shape()[2], ", ", model.input_shape()[3], ")"));

  // Keras' validation_split: the LAST fraction of the training data, taken before any shuffling.
  Tensor x_val, y_val;
  if (split > 0) {
    const int64_t n = train.x.dim(0), n_val = static_cast<int64_t>(double(n) * split);
    if (n_val < 1 || n_val >= n) throw Error(cat("--validation-split: ", split, " of ", n, " samples leaves nothing"));
    x_val = rows(train.x, n - n_val, n);
    y_val = rows(train.y, n - n_val, n);
    train.x = rows(train.x, 0, n - n_val);
    train.y = rows(train.y, 0, n - n_val);
  }

  FitOptions fo;
  fo.epochs = epochs;
  fo.batch_size = batch;
  fo.steps_per_epoch = steps;
  fo.seed = seed;
  fo.schedule = schedule;
  if (split > 0) {
    fo.x_val = &x_val;
    fo.y_val = &y_val;
  }
  fo.monitor = !o.monitor.empty() ? o.monitor : split > 0 ? "val_loss" : "loss";
  fo.patience = patience;
  fo.restore_best_weights = o.save_best;
  fo.progress = o.quiet ? nullptr : &std::cout;
  TrainingProgress progress;
  progress.seed = seed;
  progress.monitor = fo.monitor;
  if (!o.resume.empty()) {  // the weights, optimizer, Dropout streams and fit()'s position of an interrupted run
    try {
      progress = load_checkpoint(o.resume, model, *opt);
    } catch (const Error& e) {
      throw Error(cat("--resume: ", e.what()));
    }
    if (!progress.fit.started)
      throw Error(cat("--resume: '", o.resume, "' records no training position (written by an older convkit)"));
    if (progress.seed != seed || progress.monitor != fo.monitor)
      throw Error(cat("--resume: '", o.resume, "' was written by a run with --seed ", progress.seed, " and monitor ",
                      progress.monitor, "; this run has --seed ", seed, " and monitor ", fo.monitor));
  }
  fo.state = &progress.fit;
  fo.stop_requested = &g_interrupted;
  const std::string interrupt_checkpoint = !o.checkpoint.empty() ? o.checkpoint : o.out + ".checkpoint";
  check_writable("--out", interrupt_checkpoint);
  if (!o.checkpoint.empty())
    fo.on_epoch_end = [&](const EpochLog& log, bool improved) {
      progress.epoch = log.epoch;
      if (improved) {
        progress.best_metric = fo.monitor == "loss" ? log.loss : fo.monitor == "accuracy" ? log.accuracy
                               : fo.monitor == "val_loss" ? log.val_loss.value_or(log.loss)
                                                          : log.val_accuracy.value_or(log.accuracy);
        progress.epochs_since_best = 0;
      } else {
        ++progress.epochs_since_best;
      }
      save_checkpoint(o.checkpoint, model, *opt, progress);
      return true;
    };

  // Training curves: the per-epoch history as CSV and SVG, rewritten after every epoch (an interrupted run keeps
  // its curve so far), next to the model (OUT.history.csv, OUT.curves.svg) unless given.
  const std::string stem = o.out.ends_with(".safetensors") ? o.out.substr(0, o.out.size() - 12) : o.out;
  const std::string curves_svg = o.no_curves ? "" : !o.curves.empty() ? o.curves : stem + ".curves.svg";
  const std::string history_csv = o.no_curves ? "" : !o.history.empty() ? o.history : stem + ".history.csv";
  if (!curves_svg.empty()) check_writable("--curves", curves_svg);
  if (!history_csv.empty()) check_writable("--history", history_csv);
  std::vector<EpochLog> epoch_logs;
  // A resumed run continues the curves of the run it resumes: the epochs that run completed come from its history
  // file (rows past the checkpoint's position, written after it, are dropped); without the file they start empty.
  if (!o.resume.empty() && !history_csv.empty() && std::filesystem::exists(history_csv)) {
    epoch_logs = viz::parse_history_csv(read_file(history_csv), "--resume: history '" + history_csv + "'");
    if (epoch_logs.size() > std::size_t(progress.fit.epoch)) epoch_logs.resize(std::size_t(progress.fit.epoch));
  }
  if (!o.no_curves)
    fo.on_epoch_end = [&, then = fo.on_epoch_end](const EpochLog& log, bool improved) {
      epoch_logs.push_back(log);
      viz::write_history(history_csv, curves_svg, epoch_logs);
      return then ? then(log, improved) : true;
    };

  if (!o.quiet) {
    std::cout << model.summary();
    std::cout << "Training on " << train.x.dim(0) << " samples" << (split > 0 ? cat(", validating on ", x_val.dim(0)) : "")
              << "; " << opt->name() << ", lr " << schedule.initial << " (" << o.schedule << "), batch " << batch << ", "
              << num_threads() << " thread(s), " << to_string(active_isa()) << "\n";
  }
  const auto start = std::chrono::steady_clock::now();
  struct sigaction sa {}, previous{};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &previous);
  const History h = fit(model, train.x, train.y, *loss, *opt, fo);
  ::sigaction(SIGINT, &previous, nullptr);
  if (h.stopped_reason == "interrupted") {
    progress.epoch = progress.fit.epoch;
    save_checkpoint(interrupt_checkpoint, model, *opt, progress);
    std::cout << std::flush;
    std::cerr << "convkit train: interrupted at epoch " << progress.fit.epoch + 1 << ", step " << progress.fit.step
              << "; checkpoint saved to " << interrupt_checkpoint << " (continue with --resume "
              << interrupt_checkpoint << ")\n";
    std::exit(130);  // the shell's status for a SIGINT
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t trained = (steps > 0 ? steps * batch : train.x.dim(0)) * static_cast<int64_t>(h.epochs.size());
  const EvalResult r = evaluate(model, test.x, test.y, *loss);
  save_model(o.out, model);
  std::cout << "test loss: " << r.loss << " - test accuracy: " << r.accuracy << " (" << r.samples << " images)\n"
            << "trained " << h.epochs.size() << " epoch(s) in " << seconds << " s ("
            << static_cast<int64_t>(double(trained) / seconds) << " images/s)" << (h.stopped_reason.empty() ? "" : "; stopped by ")
            << h.stopped_reason << "\nsaved " << o.out << "\n";
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a model on an IDX dataset (Fashion-MNIST by default)");
  auto o = std::make_shared<TrainOptions>();
  cmd->add_option("--model", o->model, "Keras JSON architecture (.json) or a convkit model file to continue from")
      ->required();
  cmd->add_option("--data", o->data, "Directory with the IDX files (train-*/t10k-*, plain or .gz)")->capture_default_str();
  cmd->add_option("--out", o->out, "Where to write the trained model (safetensors)")->required();
  cmd->add_option("--epochs", o->epochs, "Number of epochs")->capture_default_str();
  cmd->add_option("--batch-size", o->batch_size, "Samples per step")->capture_default_str();
  cmd->add_option("--steps-per-epoch", o->steps_per_epoch, "Steps per epoch (0: one pass over the data)")
      ->capture_default_str();
  cmd->add_option("--optimizer", o->optimizer, "adam, adamw or sgd")->capture_default_str();
  cmd->add_option("--lr", o->lr, "Initial learning rate")->capture_default_str();
  cmd->add_option("--momentum", o->momentum, "SGD momentum")->capture_default_str();
  cmd->add_flag("--nesterov", o->nesterov, "SGD with Nesterov momentum");
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW's decoupled weight decay")->capture_default_str();
  cmd->add_option("--schedule", o->schedule, "Learning-rate schedule: constant, step or cosine")->capture_default_str();
  cmd->add_option("--step-epochs", o->step_epochs, "step schedule: epochs between drops")->capture_default_str();
  cmd->add_option("--lr-factor", o->lr_factor, "step schedule: factor at each drop")->capture_default_str();
  cmd->add_option("--loss", o->loss, "Loss (from logits unless the model ends in softmax)")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed for the initial weights, shuffling and dropout")->capture_default_str();
  cmd->add_option("--validation-split", o->validation_split, "Fraction of the training data held out (the last part)")
      ->capture_default_str();
  cmd->add_option("--patience", o->patience, "Early stopping after N epochs without improvement (0: off)")
      ->capture_default_str();
  cmd->add_option("--monitor", o->monitor, "loss, accuracy, val_loss or val_accuracy (default val_loss with a "
                                           "validation split, else loss)");
  cmd->add_flag("--save-best", o->save_best, "Keep the weights of the best epoch (by --monitor), not the last");
  cmd->add_option("--checkpoint", o->checkpoint, "Write a checkpoint (weights + optimizer state) after every epoch");
  cmd->add_option("--resume", o->resume, "Continue the run that wrote this checkpoint (same options; Ctrl-C saves "
                                         "one to --checkpoint, or OUT.checkpoint)");
  cmd->add_option("--threads", o->threads, "Threads (default: CONVKIT_NUM_THREADS or all cores)");
  cmd->add_option("--limit", o->limit, "Use only the first N training images (0: all)")->capture_default_str();
  cmd->add_flag("--quiet", o->quiet, "No summary and no progress bar");
  cmd->add_option("--curves", o->curves, "Training curves picture (SVG; default OUT.curves.svg, next to the model)");
  cmd->add_option("--history", o->history, "Per-epoch loss and accuracy (CSV; default OUT.history.csv)");
  cmd->add_flag("--no-curves", o->no_curves, "Write neither the curves nor the history");
  cmd->callback([o] { run(*o); });
}

}  // namespace convkit::cli
