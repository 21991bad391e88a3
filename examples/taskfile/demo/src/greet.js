export function greet(name) {
  return `Hello, ${name}! This output came from the task-cache demo.`;
}
