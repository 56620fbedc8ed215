"""The tiny GPT-2 and Trainer the Hugging Face tests train, in a module of its own: the tests
import it only when they run (every parallel test process collects their module, and importing
the Trainer costs 10 to 15 s of CPU here)."""

import torch
import transformers

transformers.logging.set_verbosity_error()


class StepCounter(transformers.TrainerCallback):
    def __init__(self):
        self.steps = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def tiny_trainer(output_dir, max_steps, callbacks, **overrides):
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2, use_cache=False
    )
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 64, (8, 16), generator=torch.Generator().manual_seed(1))
    data = [{"input_ids": row, "labels": row} for row in ids]
    args = transformers.TrainingArguments(
        output_dir=str(output_dir),
        max_steps=max_steps,
        save_steps=2,
        save_total_limit=1,  # the Trainer deletes all but the newest checkpoint folder
        per_device_train_batch_size=2,
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        **overrides,
    )
    return transformers.Trainer(
        model=model, args=args, train_dataset=data, eval_dataset=data[:2], callbacks=callbacks
    )
