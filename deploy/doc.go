// Package deploy holds no code: its tests check the deployment files at the
// repository root (docker-compose.yml, Dockerfile, .dockerignore) against the
// configuration contract in docs/configuration.md and the Kafka version that
// integration/infra/kafka/pom.xml pins for the scripted test services.
package deploy
