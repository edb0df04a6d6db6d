# One image for every part of the stack: the fixture site, the migration step, the submit step,
# the workers and the command line (docker-compose.yml). README, "Distributed crawling".
FROM python:3.11-slim

WORKDIR /app
# The dependencies first, so that a change to the code does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir crawler fixtures && touch crawler/__init__.py fixtures/__init__.py \
    && pip install --no-cache-dir -e . \
    && rm -r crawler fixtures
COPY alembic.ini ./
COPY alembic ./alembic
COPY fixtures ./fixtures
COPY crawler ./crawler

# Not root: a crawler needs no privileges. (Compose runs each container with an init that
# reaps the orphans a killed pool may leave.)
RUN useradd --create-home crawler
USER crawler
CMD ["crawler", "--help"]
