// Walking an acorn syntax tree, for the build's source-to-source passes.

export type AnyNode = { type: string; start: number; end: number } & Record<string, any>;

export function isNode(value: unknown): value is AnyNode {
  return typeof value === 'object' && value !== null && typeof (value as AnyNode).type === 'string';
}

/** Calls `visit` for `node` and every node below it, parents first, with the node's parent. */
export function eachNode(node: AnyNode, visit: (node: AnyNode, parent?: AnyNode) => void, parent?: AnyNode): void {
  visit(node, parent);
  for (const key of Object.keys(node)) {
    const value = node[key];
    for (const child of Array.isArray(value) ? value : [value]) if (isNode(child)) eachNode(child, visit, node);
  }
}
