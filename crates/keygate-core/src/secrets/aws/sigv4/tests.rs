//! SigV4 against AWS's published vectors: the Signature Version 4 test suite (credentials
//! `AKIDEXAMPLE`, 2015-08-30T12:36:00Z, `us-east-1`, service `service`) and the IAM `ListUsers`
//! walk-through of the signing documentation.

use std::time::{Duration, UNIX_EPOCH};

use secrecy::SecretString;

use super::*;

const SUITE_DATE: &str = "20150830T123600Z";
const SUITE_HOST: (&str, &str) = ("Host", "example.amazonaws.com");
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

fn example_credentials(token: Option<&str>) -> Credentials {
    Credentials {
        access_key_id: "AKIDEXAMPLE".to_owned(),
        secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        session_token: token.map(SecretString::from),
    }
}

fn suite_authorization(signed_headers: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
         SignedHeaders={signed_headers}, Signature={signature}"
    )
}

fn sign_suite(request: Request<'_>, token: Option<&str>) -> Signed {
    let scope = Scope {
        region: "us-east-1",
        service: "service",
        amz_date: SUITE_DATE,
    };
    sign(&request, &scope, &example_credentials(token))
}

fn plain(method: &'static str, path: &'static str, query: &'static str) -> Request<'static> {
    Request {
        method,
        path,
        query,
        headers: &[SUITE_HOST],
        payload: b"",
    }
}

#[test]
fn test_suite_vanilla_requests() {
    let cases = [
        (
            "get-vanilla",
            plain("GET", "/", ""),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        ),
        (
            "post-vanilla",
            plain("POST", "/", ""),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        ),
        (
            "get-vanilla-query-order-key-case",
            plain("GET", "/", "Param2=value2&Param1=value1"),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        ),
        (
            "get-utf8",
            plain("GET", "/\u{1234}", ""),
            "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
        ),
        (
            "get-unreserved",
            plain(
                "GET",
                "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                "",
            ),
            "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        ),
    ];
    for (name, request, signature) in cases {
        let signed = sign_suite(request, None);
        assert_eq!(
            signed.authorization,
            suite_authorization("host;x-amz-date", signature),
            "{name}"
        );
        assert_eq!(signed.amz_date, SUITE_DATE);
        assert!(signed.security_token.is_none());
    }
}

#[test]
fn test_suite_header_value_case_is_kept() {
    let request = Request {
        headers: &[SUITE_HOST, ("My-Header1", "VALUE1")],
        ..plain("POST", "/", "")
    };
    assert_eq!(
        sign_suite(request, None).authorization,
        suite_authorization(
            "host;my-header1;x-amz-date",
            "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"
        )
    );
}

#[test]
fn test_suite_form_body_is_hashed() {
    let request = Request {
        headers: &[
            SUITE_HOST,
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        payload: b"Param1=value1",
        ..plain("POST", "/", "")
    };
    assert_eq!(
        sign_suite(request, None).authorization,
        suite_authorization(
            "content-type;host;x-amz-date",
            "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        )
    );
}

#[test]
fn test_suite_session_token_is_signed() {
    let signed = sign_suite(plain("POST", "/", ""), Some(STS_TOKEN));
    assert_eq!(
        signed.authorization,
        suite_authorization(
            "host;x-amz-date;x-amz-security-token",
            "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        )
    );
    assert_eq!(signed.security_token.as_deref(), Some(STS_TOKEN));
}

#[test]
fn iam_list_users_documentation_example() {
    assert_eq!(
        hex::encode(signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam"
        )),
        "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
    );
    let request = Request {
        method: "GET",
        path: "/",
        query: "Action=ListUsers&Version=2010-05-08",
        headers: &[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
        ],
        payload: b"",
    };
    let scope = Scope {
        region: "us-east-1",
        service: "iam",
        amz_date: SUITE_DATE,
    };
    assert_eq!(
        sign(&request, &scope, &example_credentials(None)).authorization,
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}

#[test]
fn canonical_parts() {
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("/a b/%41"), "/a%20b/%2541");
    assert_eq!(canonical_query("b=2&a=&a=1&c"), "a=&a=1&b=2&c=");
    assert_eq!(normalize_value("  a   b  c "), "a b c");
    let (lines, names) = canonical_headers(vec![
        ("x".to_owned(), "2".to_owned()),
        ("a".to_owned(), "1".to_owned()),
        ("x".to_owned(), "3".to_owned()),
    ]);
    assert_eq!((lines.as_str(), names.as_str()), ("a:1\nx:2,3\n", "a;x"));
}

#[test]
fn amz_dates() {
    let at = |secs| amz_date(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(1_440_938_160), SUITE_DATE);
    assert_eq!(at(951_868_799), "20000229T235959Z");
    assert_eq!(at(0), "19700101T000000Z");
}
