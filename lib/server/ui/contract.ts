/**
 * The web UI's JSON contract (docs/ui.md): the response bodies of the `/api` routes, as the server's
 * `RepoView` builds them (view.ts) and the pages read them (ui/src/api.ts). Type declarations only, with no
 * imports, so the browser project (DOM library, no Node types) compiles this same file: one definition for
 * both sides.
 */

export interface UiCommit {
  id: string;
  parents: string[];
  message: string;
  /** `Name <email>` of the author. */
  author: string;
  /** Author time, ISO-8601 (UTC). */
  time: string;
  /** Branches (`main`) and tags (`tag: v1`) pointing at the commit. */
  refs: string[];
  /** The numeric `metrics` a training integration stored in the commit, else null. */
  metrics: Record<string, number> | null;
}

export interface UiRefs {
  head: string | null;
  headId: string | null;
  branches: Array<{ name: string; id: string }>;
  /** `id`: the commit the tag points at (annotated tags peeled). */
  tags: Array<{ name: string; id: string }>;
}

export interface UiTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** The stored object holding the tensor (its segment). */
  id: string;
  /** Codec of the stored object; null when the object is not in this repository (a partial clone). */
  codec: string | null;
  base: string | null;
  chainDepth: number;
  cast: boolean;
  logicalSize: number;
  /** Stored bytes of the object (shared by the views of one .pt storage); null when absent. */
  storedSize: number | null;
}

export interface UiFile {
  path: string;
  format: string;
  size: number;
  sha256: string;
  lossy: boolean;
  tensors: UiTensor[];
}

export type UiStatus = 'added' | 'removed' | 'modified' | 'unchanged';

export interface UiDiffTensor {
  name: string;
  status: UiStatus;
  dtype: string;
  shape: number[];
  /** The first purely numeric dotted component of the name, else null. */
  layer: string | null;
  /** What follows the layer component (the whole name when there is none). */
  kind: string;
  relL2: number | null;
  fracChanged: number | null;
  maxAbs: number | null;
  nonFinite: number;
  /** Set when dtype or shape changed (no element-wise metrics then). */
  oldDtype?: string;
  oldShape?: number[];
}

export interface UiDiff {
  a: string;
  b: string;
  files: Array<{ path: string; status: UiStatus; tensors: UiDiffTensor[] }>;
}

export interface UiHistogram {
  name: string;
  dtype: string;
  shape: number[];
  bins: { edges: number[]; counts: number[] };
  changed: number;
  total: number;
  nonFinite: number;
  relL2: number | null;
  maxAbs: number;
}

export interface UiStorage {
  /** Decoded bytes of every stored object (each object once). */
  logical: number;
  /** Stored bytes of every object. */
  stored: number;
  objects: number;
  byCodec: Array<{ codec: string; objects: number; logical: number; stored: number }>;
  byFile: Array<{ path: string; logical: number; stored: number }>;
  byCommit: Array<{ id: string; message: string; newStored: number }>;
  chainDepths: Array<{ depth: number; objects: number }>;
}

export interface UiRun {
  name: string;
  status: string;
  id: string;
  params: Record<string, unknown>;
  metrics: Record<string, Array<[number, number]>>;
}

/** One page of history (`GET /api/r/<repo>/commits`); `next` is the cursor of the following page. */
export interface UiCommitPage {
  commits: UiCommit[];
  next: string | null;
}

/** One commit with its files (`GET /api/r/<repo>/commit/<rev>`). */
export interface UiCommitDetail {
  commit: UiCommit;
  files: UiFile[];
}
