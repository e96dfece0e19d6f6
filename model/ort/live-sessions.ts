/**
 * How many ONNX Runtime models (their prefill and step sessions count as one) this process holds: the
 * swap and memory tests watch it. Kept apart from ort-gpt.ts so that reading it does not load the
 * native runtime.
 */
let live = 0;

export function liveOrtModels(): number {
  return live;
}

export function countOrtModel(delta: 1 | -1): void {
  live += delta;
}
