/**
 * The safetensors format: {@link io.peft4j.core.safetensors.SafetensorsFile} reads and validates
 * (memory-mapped or from bytes in memory), {@link io.peft4j.core.safetensors.Safetensors} writes
 * (deterministically and atomically).
 */
package io.peft4j.core.safetensors;
