//! Problems found while loading a file ([`Diagnostic`], located by file,
//! document, object and field), the result of loading one file
//! ([`Loaded`]), and the per-document collector that loading and
//! validation both report into. A leaf.

use crate::object::Resource;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, located as precisely as it can be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: String,
    /// 1-based index of the YAML document in the file; 0 when the problem
    /// is the file's as a whole (unreadable, too large, too deep).
    pub document: usize,
    /// `Kind namespace/name`, when known.
    pub object: Option<String>,
    /// Field path, e.g. `spec.client.meshTLS.serviceAccounts[0].name`.
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.file)?;
        if self.document > 0 {
            write!(f, " document {}", self.document)?;
        }
        if let Some(object) = &self.object {
            write!(f, " ({object})")?;
        }
        if let Some(field) = &self.field {
            write!(f, " {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The resources in one file and the problems found.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    /// The 1-based document each of `resources` came from, in the same order.
    pub documents: Vec<usize>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

/// Collects diagnostics for one document.
pub(crate) struct DocContext<'a> {
    pub file: &'a str,
    pub document: usize,
    pub object: Option<String>,
    pub diagnostics: &'a mut Vec<Diagnostic>,
}

impl DocContext<'_> {
    pub fn error(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Error, field, message);
    }

    pub fn warn(&mut self, field: Option<&str>, message: impl Into<String>) {
        self.push(Severity::Warning, field, message);
    }

    fn push(&mut self, severity: Severity, field: Option<&str>, message: impl Into<String>) {
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.into(),
            document: self.document,
            object: self.object.clone(),
            field: field.map(String::from),
            message: message.into(),
        });
    }
}
