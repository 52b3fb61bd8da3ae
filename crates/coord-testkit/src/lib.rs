//! Local ensembles of real `coordd` processes for tests and the verifier.
