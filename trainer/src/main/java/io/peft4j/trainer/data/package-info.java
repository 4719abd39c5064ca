/**
 * Training data: {@link io.peft4j.trainer.data.Datasets#open} turns a
 * {@link io.peft4j.trainer.data.DataSpec} (image class folders, IDX files, NumPy pairs, TSV/CSV/JSONL
 * text with a Hugging Face tokenizer) into {@link io.peft4j.trainer.data.Dataset}s checked against
 * the model's {@link io.peft4j.trainer.data.ModelInputs}; {@link io.peft4j.trainer.data.Splits}
 * makes seeded stratified splits and epoch orders; a {@link io.peft4j.trainer.data.BatchLoader}
 * prepares an epoch's {@link io.peft4j.trainer.data.Batch}es on background threads, deterministically
 * whatever the thread count.
 */
package io.peft4j.trainer.data;
