//! Amazon States Language: model, parser, validation and the pure interpreter core.
