// The authorization server of tests/connect_oauth.rs: panva's oidc-provider (OpenID
// Certified), installed by scripts/setup-oidc-provider into target/oidc-provider, on
// 127.0.0.1:$PORT, with
// - a confidential native client `sluice-app` (authorization code, PKCE required, refresh
//   tokens rotated on every use: an old refresh token is refused, and reusing one revokes
//   the grant, as the spec recommends), redirecting to http://127.0.0.1:$REDIRECT_PORT/callback;
// - a client `sluice-machine` for client credentials;
// - the dev login and consent forms (any login and password), which the test submits itself;
// - userinfo (`/me`) as the protected resource, revocation and introspection, and an
//   injected early expiry of one access token (below);
// - `x_refresh_token_expires_in` added to token responses when $X_REFRESH_EXPIRES_IN is set,
//   as QuickBooks' token endpoint does (oidc-provider itself does not say it).
// Prints `listening PORT` once it accepts connections.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.resolve(process.env.OIDC_PROVIDER_DIR, 'node_modules') + '/');
const { default: Provider } = await import(require.resolve('oidc-provider'));

const port = Number(process.env.PORT);
const redirect = `http://127.0.0.1:${process.env.REDIRECT_PORT}/callback`;
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'sluice-app',
      client_secret: process.env.APP_SECRET,
      application_type: 'native',
      redirect_uris: [redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      client_id: 'sluice-machine',
      client_secret: process.env.MACHINE_SECRET,
      redirect_uris: [],
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  cookies: { keys: ['sluice-test-cookie-key'] },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true, allowedPolicy: async () => true },
    introspection: { enabled: true, allowedPolicy: async () => true },
  },
  scopes: ['openid', 'offline_access', 'read'],
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  expiresWithSession: async () => false,
  ttl: {
    AccessToken: Number(process.env.ACCESS_TTL || 600),
    ClientCredentials: 600,
    RefreshToken: 30 * 24 * 3600,
    Grant: 30 * 24 * 3600,
    Session: 3600,
    Interaction: 600,
    AuthorizationCode: 60,
    IdToken: 600,
  },
});

// Injected expiry: `GET /test/expire-access-token?token=...` destroys one access token (or
// client-credentials token) before
// its time (as a clock skew or a server-side invalidation would), leaving the grant and its
// refresh token alone (RFC 7009 revocation of an access token revokes the whole grant here).
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/expire-access-token') {
    // Client-credentials tokens are a model of their own.
    const token = (await provider.AccessToken.find(String(ctx.query.token)))
      || (await provider.ClientCredentials.find(String(ctx.query.token)));
    if (token) await token.destroy();
    ctx.status = token ? 204 : 404;
    return;
  }
  await next();
});

if (process.env.X_REFRESH_EXPIRES_IN) {
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.body && ctx.body.refresh_token) {
      ctx.body.x_refresh_token_expires_in = Number(process.env.X_REFRESH_EXPIRES_IN);
    }
  });
}

// oidc-provider reports failures as events; the test reads stderr only when it fails.
for (const event of ['grant.error', 'server_error', 'authorization.error']) {
  provider.on(event, (ctx, err) => console.error(`${event}: ${err && err.message}`));
}

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
