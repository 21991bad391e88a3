/** Vitest global setup: placeholder until the fixtures land (see packages/testkit). */
export default function setup(): void {}
