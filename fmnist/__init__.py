"""fmnist: the library behind the Fashion-MNIST pipeline (stages/) and the `fmnist` command.

Split by concern; stages and the CLI import from here, never the other way round:
- config:      params (read through DVC), workspace paths, seeding
- errors:      named errors a user can hit, and the clean-exit wrapper every stage uses
- jsonfiles:   JSON files the stages hand each other, written atomically
- data/        formats (idx, Kaggle CSV), sources (Kaggle, Debian copy, Zalando), expectations
               and validation (Great Expectations), splits (scaling, train/val split)
- model/       architectures (Keras builders), augmentation (compiled shifts and erasing),
               training (recipe, fit, data-parallel), evaluation (scores), anatomy (finding
               layers by inspection), finetune (start from a logged model)
- insight/     gradcam (heat maps), mistakes (error analysis), figures, report (evaluate's files)
- lineage:     the data a run saw, as MLflow dataset inputs
- tracking:    where the MLflow store is and how runs and models are logged
- pending:     train's outputs kept aside until logged (a lost server costs no retraining)
- registry:    the MLflow model registry: versions, champion/challenger, promote, rollback
- plots:       the data, training and confusion-matrix figures (insight/figures: the rest)
- serving/     inputs (image files -> 28x28 arrays), checks (does it look like a garment?),
               predict (a registered model's top classes), demo (the Gradio web app)
- leaderboard: the experiment's runs side by side
- server:      `fmnist server`, the team stack (PostgreSQL + mlflow server)
- profiles/    named parameter sets as `dvc exp run -S` flags
- cli:         the `fmnist` command
"""
import os as _os

# TensorFlow reads its C++ log level once, when it loads, and every stage and the `fmnist`
# command import this package before Keras, so an environment default set here is the one that
# works (a setting in the caller's environment wins). 3 keeps only fatal lines: what TensorFlow
# merely logs in a normal run is start-up chatter and the harmless `E0000 ... NodeDef mentions
# attribute use_unbounded_threadpool` lines of Keras' tf.data input pipeline; every error that
# matters is raised as a Python exception. TF_CPP_MIN_LOG_LEVEL=0 shows everything again.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
