FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DEBUG=1 VAR_DIR=/tmp/build python manage.py collectstatic --noinput
RUN useradd --create-home pneumoscan && mkdir -p /data/media && chown pneumoscan /data/media
USER pneumoscan
EXPOSE 8000
