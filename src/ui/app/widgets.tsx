import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { nextLink } from './format.js';
import { ApiError, type Session } from './session.js';

export interface Loaded<T> {
  data: T | null;
  error: Error | null;
  loading: boolean;
  reload(): void;
}

/** Runs `load` when `keys` change; the latest answer wins. */
export function useLoad<T>(load: () => Promise<T>, keys: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | null; error: Error | null; loading: boolean }>({ data: null, error: null, loading: true });
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    let current = true;
    setState((previous) => ({ ...previous, loading: true, error: null }));
    load().then(
      (data) => current && setState({ data, error: null, loading: false }),
      (error: Error) => current && setState({ data: null, error, loading: false }),
    );
    return () => {
      current = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...keys, generation]);
  const reload = useCallback(() => setGeneration((value) => value + 1), []);
  return { ...state, reload };
}

export function ErrorNote({ error }: { error: Error }) {
  const denied = error instanceof ApiError && (error.status === 401 || error.status === 403);
  return (
    <p class="error" role="alert">
      {denied ? 'Your account may not see this: ' : 'Could not load: '}
      {error.message}
      {error instanceof ApiError && error.code ? <span class="code"> ({error.code})</span> : null}
    </p>
  );
}

export function Status<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (loaded.error) return <ErrorNote error={loaded.error} />;
  if (loaded.data === null) return <p class="loading" aria-live="polite">Loading…</p>;
  return <>{children(loaded.data)}</>;
}

/** Copies text; where the clipboard API is absent (plain HTTP off localhost), selects it for the user. */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState(false);
  const copy = async (event: Event) => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(true);
      setTimeout(() => setCopied(false), 1500);
    } catch {
      const code = (event.currentTarget as HTMLElement).previousElementSibling;
      if (code) window.getSelection()?.selectAllChildren(code);
    }
  };
  return (
    <button type="button" class="copy" onClick={copy} aria-label={`Copy ${label}`} title={`Copy ${label}`}>
      {copied ? 'Copied' : 'Copy'}
    </button>
  );
}

export function Copyable({ text, shown, label }: { text: string; shown?: string; label: string }) {
  return (
    <span class="copyable">
      <code title={text}>{shown ?? text}</code>
      <CopyButton text={text} label={label} />
    </span>
  );
}

/** An inline confirmation (no modal to trap focus in): the question, what goes with it, and two buttons. */
export function Confirm(props: { question: string; details?: ComponentChildren; action: string; danger?: boolean; onConfirm(): Promise<void>; onCancel(): void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | null>(null);
  return (
    <div class="confirm" role="alertdialog" aria-label={props.question}>
      <p>
        <strong>{props.question}</strong>
      </p>
      {props.details}
      {error ? <ErrorNote error={error} /> : null}
      <div class="actions">
        <button
          type="button"
          class={props.danger ? 'danger' : 'primary'}
          disabled={busy}
          ref={(element) => element?.focus()}
          onClick={async () => {
            setBusy(true);
            try {
              await props.onConfirm();
            } catch (caught) {
              setError(caught as Error);
              setBusy(false);
            }
          }}
        >
          {props.action}
        </button>
        <button type="button" onClick={props.onCancel} disabled={busy}>
          Cancel
        </button>
      </div>
    </div>
  );
}

export function Table({ caption, head, children }: { caption: string; head: string[]; children: ComponentChildren }) {
  return (
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {head.map((cell) => (
              <th scope="col">{cell}</th>
            ))}
          </tr>
        </thead>
        <tbody>{children}</tbody>
      </table>
    </div>
  );
}

export interface PagedList<T> {
  rows: T[] | null;
  error: Error | null;
  /** Loads a first page (replacing the rows) from `path`. */
  load(path: string): Promise<void>;
  /** The "Show more" button, while the last answer linked a next page. */
  more: ComponentChildren;
}

/** A listing of the registry's API paged by `Link: <…>; rel="next"`, whose `key` holds the rows. */
export function usePagedList<T>(session: Session, key: string): PagedList<T> {
  const [rows, setRows] = useState<T[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const fetchPage = async (path: string, append: boolean) => {
    try {
      const { body, response } = await session.json<Record<string, T[]>>(path);
      const page = body[key] ?? [];
      setRows((previous) => (append && previous ? [...previous, ...page] : page));
      setNext(nextLink(response));
      setError(null);
    } catch (caught) {
      setError(caught as Error);
    }
  };
  const more = next ? (
    <button type="button" class="more" onClick={() => void fetchPage(next, true)}>
      Show more
    </button>
  ) : null;
  return { rows, error, load: (path) => fetchPage(path, false), more };
}
