import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { parseRoute, routes, type Route } from './format.js';
import { HistoryPage } from './history.js';
import { ImagePage } from './image.js';
import { AuditPage, GcPage, GcRunPage, MirrorPage } from './operations.js';
import { RepositoriesPage } from './repositories.js';
import { RepositoryPage } from './repository.js';
import { ApiError, Session } from './session.js';
import { ErrorNote } from './widgets.js';

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const changed = () => {
      setRoute(parseRoute(window.location.hash));
      document.getElementById('main')?.focus();
    };
    window.addEventListener('hashchange', changed);
    return () => window.removeEventListener('hashchange', changed);
  }, []);
  return route;
}

function LoginPage({ session, onSignedIn }: { session: Session; onSignedIn(): void }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<Error | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    try {
      await session.login(username, password);
      setPassword('');
      onSignedIn();
    } catch (caught) {
      setError(caught as Error);
      setBusy(false);
    }
  };
  return (
    <section class="login" aria-labelledby="login-title">
      <h1 id="login-title">Sign in</h1>
      <p class="muted">With your registry account or robot, as for docker login.</p>
      <form onSubmit={submit}>
        <label>
          User name
          <input name="username" autocomplete="username" required value={username} onInput={(event) => setUsername((event.target as HTMLInputElement).value)} />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(event) => setPassword((event.target as HTMLInputElement).value)} />
        </label>
        {error ? <ErrorNote error={error} /> : null}
        <button type="submit" class="primary" disabled={busy}>
          Sign in
        </button>
      </form>
    </section>
  );
}

function Page({ session, route }: { session: Session; route: Route }) {
  switch (route.page) {
    case 'repositories':
      return <RepositoriesPage session={session} />;
    case 'repository':
      return <RepositoryPage session={session} name={route.name} />;
    case 'image':
      return <ImagePage session={session} name={route.name} reference={route.reference} />;
    case 'history':
      return <HistoryPage session={session} name={route.name} tag={route.tag} />;
    case 'audit':
      return <AuditPage session={session} />;
    case 'gc':
      return <GcPage session={session} />;
    case 'gcRun':
      return <GcRunPage session={session} id={route.id} />;
    case 'mirror':
      return <MirrorPage session={session} />;
    case 'missing':
      return (
        <p>
          No such page. <a href={routes.repositories()}>Repositories</a>
        </p>
      );
  }
}

function App({ session }: { session: Session }) {
  const route = useRoute();
  const [state, setState] = useState<'probing' | 'open' | 'login' | 'signed-in' | Error>('probing');
  const [operator, setOperator] = useState(false);
  useEffect(() => {
    session.probe().then(setState, (error: Error) => setState(error));
  }, []);
  useEffect(() => {
    if (state !== 'open' && state !== 'signed-in') return;
    void Promise.all([session.may('registry', 'audit', ['*']), session.may('registry', 'catalog', ['*'])]).then(([audit, catalog]) => setOperator(audit.has('*') || catalog.has('*')));
  }, [state]);
  const signOut = () => {
    session.signOut();
    setOperator(false);
    setState('login');
  };
  return (
    <>
      <a class="skip" href="#main" onClick={(event) => (event.preventDefault(), document.getElementById('main')?.focus())}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={routes.repositories()}>
          <img src="icon.svg" alt="" width={24} height={24} /> Registry
        </a>
        {state === 'open' || state === 'signed-in' ? (
          <nav aria-label="Main">
            <a href={routes.repositories()} aria-current={route.page === 'repositories' ? 'page' : undefined}>
              Repositories
            </a>
            {operator ? (
              <a href={routes.audit()} aria-current={['audit', 'gc', 'gcRun', 'mirror'].includes(route.page) ? 'page' : undefined}>
                Operations
              </a>
            ) : null}
          </nav>
        ) : null}
        <div class="account">
          {state === 'signed-in' ? (
            <>
              <span aria-label="Signed in as">{session.user}</span>
              <button type="button" onClick={signOut}>
                Sign out
              </button>
            </>
          ) : state === 'open' ? (
            <span class="muted">auth off</span>
          ) : null}
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {state === 'probing' ? <p class="loading">Loading…</p> : null}
        {state instanceof Error ? <ErrorNote error={state instanceof ApiError ? state : new Error(`The registry did not answer: ${state.message}`)} /> : null}
        {state === 'login' ? <LoginPage session={session} onSignedIn={() => setState('signed-in')} /> : null}
        {state === 'open' || state === 'signed-in' ? <Page session={session} route={route} /> : null}
      </main>
    </>
  );
}

const container = document.getElementById('app')!;
// The page's own "Loading…" goes; the app draws everything from here on.
container.textContent = '';
render(<App session={new Session()} />, container);
