// Shape checks shared by every command validator: a command is a plain object with exactly the
// fields its type names, so a replicated entry never carries data the FSM would silently ignore.

/** Null when `c` has every required field and no field outside required ∪ optional; else the problem. */
export function onlyFields(c: Record<string, unknown>, required: readonly string[], optional: readonly string[]): string | null {
  for (const field of required) {
    if (c[field] === undefined) return `${String(c['type'])}: missing field ${field}`;
  }
  for (const field of Object.keys(c)) {
    if (!required.includes(field) && !optional.includes(field)) return `${String(c['type'])}: unknown field ${field}`;
  }
  return null;
}
