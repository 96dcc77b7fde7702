//! Store URLs as they may be shown.

/// Where a store URL points, without any credential: scheme, host(s), port(s) and database,
/// for health, logs and errors. The URL is parsed by the driver's own parser (`tokio_postgres`
/// reads both `postgres://` URLs and `key=value` strings), never cut by hand: a password can
/// sit in the userinfo, in a `?password=` query parameter or in a `password=` pair, and each
/// of them must stay out of `/health`, which needs no API key. A URL that does not parse is
/// shown as its scheme alone.
pub fn redact(url: &str) -> String {
    let scheme = if url.starts_with("postgresql://") {
        "postgresql"
    } else {
        "postgres"
    };
    let Ok(cfg) = url.parse::<tokio_postgres::Config>() else {
        return format!("{scheme}://(unparsable URL)");
    };
    let ports = cfg.get_ports();
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(name) if name.contains(':') => {
                    format!("[{name}]")
                }
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let db = cfg.get_dbname().unwrap_or("");
    format!("{scheme}://{}/{db}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::redact;

    /// No credential survives redaction, wherever the URL carries it.
    #[test]
    fn redaction_shows_no_credential_in_any_spelling() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db.example:5433/q",
                "postgres://db.example:5433/q",
            ),
            (
                "postgres://app@db.example/q?password=s3cret",
                "postgres://db.example:5432/q",
            ),
            (
                "postgresql://app@127.0.0.1/q?sslmode=disable&password=s3cret&application_name=x",
                "postgresql://127.0.0.1:5432/q",
            ),
            (
                "host=db.example port=6000 user=app password=s3cret dbname=q",
                "postgres://db.example:6000/q",
            ),
            (
                "postgres://app:s3cret@h1:5001,h2:5002/q",
                "postgres://h1:5001,h2:5002/q",
            ),
            (
                "postgres://app:s3cret@[::1]:5432/q",
                "postgres://[::1]:5432/q",
            ),
            (
                "postgres://app:s3cret@db/q?port=notaport",
                "postgres://(unparsable URL)",
            ),
        ] {
            let got = redact(url);
            assert_eq!(got, shown, "{url}");
            assert!(
                !got.contains("s3cret") && !got.contains("app"),
                "{url} → {got}"
            );
        }
    }
}
