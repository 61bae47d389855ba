// Lanes of the commit graph, computed from the paged commit list (newest first, a commit before its parents).
// Each row gets the lane of its node and the line segments that cross the row: the top half (from the row above
// into this row's node or straight through) and the bottom half (from this row's node or straight down). A merge
// has an edge to each parent; a parent that is not loaded yet keeps its lane open down to the last row.

export interface Segment {
  /** Lane at the top edge (top half) or at the node's height (bottom half). */
  from: number;
  /** Lane at the node's height (top half) or at the bottom edge (bottom half). */
  to: number;
  /** Colour index: the lane the line belongs to. */
  color: number;
}

export interface Row {
  id: string;
  lane: number;
  /** Segments from the top edge to the middle of the row (into the node or passing by). */
  top: Segment[];
  /** Segments from the middle of the row to the bottom edge. */
  bottom: Segment[];
  /** Number of lanes in use at this row (for the SVG width). */
  width: number;
}

export interface GraphCommit {
  id: string;
  parents: string[];
}

export function layoutLanes(commits: GraphCommit[]): { rows: Row[]; lanes: number } {
  // lanes[i] = the commit id the line in lane i is heading for (null = free).
  const lanes: Array<string | null> = [];
  const rows: Row[] = [];
  let maxLanes = 0;
  const alloc = (id: string): number => {
    const free = lanes.indexOf(null);
    if (free >= 0) {
      lanes[free] = id;
      return free;
    }
    lanes.push(id);
    return lanes.length - 1;
  };
  for (const c of commits) {
    const top: Segment[] = [];
    // Lines coming from above: every lane heading somewhere. Those heading for this commit end in its node.
    let lane = lanes.indexOf(c.id);
    const incoming = lanes.map((id, i) => ({ id, i })).filter((x) => x.id !== null);
    if (lane < 0) lane = alloc(c.id); // a tip: nothing above leads here
    for (const { id, i } of incoming) top.push({ from: i, to: id === c.id ? lane : i, color: i });
    // Lanes that converged into this node are free again, except the node's own lane.
    for (let i = 0; i < lanes.length; i++) if (lanes[i] === c.id && i !== lane) lanes[i] = null;
    // The node's lane continues to the first parent; every further parent joins a lane heading there or gets one.
    const bottom: Segment[] = [];
    const parentLanes: number[] = [];
    if (c.parents.length === 0) lanes[lane] = null;
    c.parents.forEach((p, k) => {
      if (k === 0) {
        // The first parent continues in the node's lane, even when another lane already heads for it: the two
        // run side by side and meet in the parent's node (the leftmost lane survives there).
        lanes[lane] = p;
        parentLanes.push(lane);
        return;
      }
      const existing = lanes.indexOf(p);
      parentLanes.push(existing >= 0 ? existing : alloc(p));
    });
    for (const pl of parentLanes) bottom.push({ from: lane, to: pl, color: pl });
    // Every lane that came from above heading elsewhere passes straight down (a parent may join it).
    for (const { id, i } of incoming) if (id !== c.id && i !== lane) bottom.push({ from: i, to: i, color: i });
    while (lanes.length > 0 && lanes[lanes.length - 1] === null) lanes.pop();
    const width = Math.max(lane + 1, ...top.map((s) => Math.max(s.from, s.to) + 1), ...bottom.map((s) => s.to + 1));
    maxLanes = Math.max(maxLanes, width);
    rows.push({ id: c.id, lane, top, bottom, width });
  }
  return { rows, lanes: maxLanes };
}
