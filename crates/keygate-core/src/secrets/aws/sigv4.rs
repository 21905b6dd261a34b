//! AWS Signature Version 4 for header-signed requests, written out by hand.
//!
//! Builds the canonical request (method, URI-encoded path, sorted query, lower-cased sorted
//! headers, payload hash), the string to sign over the credential scope, and the
//! `Authorization` header. It signs only; it does not send, presign URLs, or stream payloads.
//! Checked against AWS's published test-suite vectors (see the tests below).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::credentials::Credentials;

/// The only algorithm this module speaks.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// What is signed: a request as it goes on the wire, before signing headers are added.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, as given to the HTTP client (`/` for Secrets Manager).
    pub path: &'a str,
    /// The raw query (`a=1&b=2`), empty when there is none.
    pub query: &'a str,
    /// Headers to sign, `host` among them. Names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub payload: &'a [u8],
}

/// Where and when a request is signed.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// e.g. `us-east-1`.
    pub region: &'a str,
    /// e.g. `secretsmanager`.
    pub service: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, see [`amz_date`].
    pub amz_date: &'a str,
}

/// The headers a signed request must carry, in addition to the ones it was signed with.
#[derive(Debug)]
pub struct Signed {
    /// `X-Amz-Date`.
    pub amz_date: String,
    /// `X-Amz-Security-Token`, when the credentials are temporary. Secret: never log.
    pub security_token: Option<String>,
    /// `Authorization`. Holds no secret (only the key id and an HMAC), but is not logged either.
    pub authorization: String,
}

/// Signs `request` with `credentials`; `x-amz-date` (and `x-amz-security-token`) are added to
/// the signed headers.
pub fn sign(request: &Request<'_>, scope: &Scope<'_>, credentials: &Credentials) -> Signed {
    let token = credentials
        .session_token
        .as_ref()
        .map(|t| t.expose_secret());
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), normalize_value(value)))
        .collect();
    headers.push(("x-amz-date".to_owned(), scope.amz_date.to_owned()));
    if let Some(token) = token {
        headers.push(("x-amz-security-token".to_owned(), token.to_owned()));
    }
    let (canonical_headers, signed_headers) = canonical_headers(headers);
    let canonical = [
        request.method.to_ascii_uppercase(),
        canonical_uri(request.path),
        canonical_query(request.query),
        canonical_headers,
        signed_headers.clone(),
        hex::encode(Sha256::digest(request.payload)),
    ]
    .join("\n");

    let date = scope.amz_date.get(..8).unwrap_or(scope.amz_date);
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(
        credentials.secret_access_key.expose_secret(),
        date,
        scope.region,
        scope.service,
    );
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    Signed {
        amz_date: scope.amz_date.to_owned(),
        security_token: token.map(str::to_owned),
        authorization: format!(
            "{ALGORITHM} Credential={}/{credential_scope}, SignedHeaders={signed_headers}, \
             Signature={signature}",
            credentials.access_key_id
        ),
    }
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so `new_from_slice` cannot fail; the fallback is unreachable.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Each byte outside the unreserved set (`A-Z a-z 0-9 - . _ ~`) as `%XX`; `/` kept when asked.
fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The path, each segment URI-encoded (for every service but S3, the path as sent is encoded
/// once more, which is what encoding the wire form achieves).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        "/".to_owned()
    } else {
        uri_encode(path, true)
    }
}

/// Query pairs, each side URI-encoded, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (uri_encode(name, false), uri_encode(value, false))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Trims a header value and collapses runs of spaces into one.
fn normalize_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `name:value\n` lines sorted by name (repeated names joined with `,`), and `a;b;c`.
fn canonical_headers(mut headers: Vec<(String, String)>) -> (String, String) {
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        match merged.last_mut() {
            Some((last, values)) if *last == name => {
                values.push(',');
                values.push_str(&value);
            }
            _ => merged.push((name, value)),
        }
    }
    let lines: String = merged
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let names = merged
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (lines, names)
}

/// `time` as `YYYYMMDDTHHMMSSZ` (UTC).
pub fn amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = crate::keys::duration::civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
