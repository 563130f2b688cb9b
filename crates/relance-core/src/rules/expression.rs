//! Expression conditions, compiled once at load with `zen-expression`.

use std::fmt;

use zen_expression::Isolate;
use zen_expression::expression::Standard;
use zen_expression::vm::VM;

/// Longer expressions are refused at load: a rule is a business condition, not a program.
pub const MAX_EXPRESSION_LEN: usize = 2048;

/// A compiled boolean expression over `contact` and `event`.
#[derive(Clone)]
pub struct CompiledExpression {
    source: String,
    compiled: zen_expression::Expression<Standard>,
}

impl fmt::Debug for CompiledExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CompiledExpression").field(&self.source).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExpressionError(String);

impl CompiledExpression {
    pub fn compile(source: &str) -> Result<CompiledExpression, ExpressionError> {
        if source.trim().is_empty() {
            return Err(ExpressionError("empty expression".into()));
        }
        if source.len() > MAX_EXPRESSION_LEN {
            return Err(ExpressionError(format!("longer than {MAX_EXPRESSION_LEN} characters")));
        }
        let compiled =
            Isolate::new().compile_standard(source).map_err(|e| ExpressionError(format!("does not parse: {e}")))?;
        Ok(CompiledExpression { source: source.to_owned(), compiled })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// True only when the expression evaluates to boolean `true`. Anything else (another
    /// type, a runtime error such as a missing field) is false, with the reason.
    pub fn matches(&self, context: &zen_expression::Variable, vm: &mut VM) -> Result<bool, String> {
        match self.compiled.evaluate_with(context.clone(), vm) {
            Ok(v) => match v.as_bool() {
                Some(b) => Ok(b),
                None => Err(format!("expression {:?} did not give true or false", self.source)),
            },
            Err(e) => Err(format!("expression {:?} failed: {e}", self.source)),
        }
    }
}
